// The floor: Node writing / reading the same bytes as the checkpoint, with nothing else to do.
// write: the checkpoint's bytes, held in 16 MiB buffers, written in order to a new file, fsynced
//   (savepoint fsyncs on commit) and closed; with `writeback`, also an fdatasync every 64 MiB that
//   is not waited for, as savepoint does (informational: the target compares with the plain write).
// read: the checkpoint read sequentially (8 MiB reads) into buffers that already exist and are
//   resident, like the variables savepoint loads into.
import { promises as fs, rmSync, statSync } from "node:fs";
import { args, awaitQuiet, dropCaches, prewarm, report, syncAll, timed } from "../lib/measure.mjs";

const a = args();
const BUF = 16 << 20;
const READ = 8 << 20;
// `bytes` instead of `source`: that many bytes of a fixed pattern (for the scaling table).
const size = a.source ? statSync(a.source).size : a.bytes;
const buffers = [];
for (let off = 0; off < size; off += BUF) buffers.push(new Uint8Array(Math.min(BUF, size - off)).fill(1));

if (a.mode === "write") {
  if (a.source) {
    const h = await fs.open(a.source, "r");
    let off = 0;
    for (const b of buffers) {
      await h.read(b, 0, b.byteLength, off);
      off += b.byteLength;
    }
    await h.close();
  } else {
    for (const [i, b] of buffers.entries()) for (let j = 0; j < b.byteLength; j += 4096) b[j] = (i + j) & 255;
  }
  rmSync(a.path, { force: true });
  const quiet = await awaitQuiet();
  // Every writer starts with no dirty pages left by an earlier run.
  syncAll();
  const t = await timed(async () => {
    const out = await fs.open(a.path, "w");
    let unsynced = 0;
    let writeback;
    for (const b of buffers) {
      for (let done = 0; done < b.byteLength; ) done += (await out.write(b, done, b.byteLength - done)).bytesWritten;
      // Optionally the same early writeback savepoint does: an fdatasync every 64 MiB, not awaited.
      unsynced += b.byteLength;
      if (a.writeback && unsynced >= 64 << 20 && !writeback) {
        unsynced = 0;
        writeback = out.datasync().then(() => (writeback = undefined));
      }
    }
    await writeback;
    await out.sync();
    await out.close();
  });
  rmSync(a.path, { force: true });
  report({ seconds: t.seconds, cpu: t.cpu, bytes: size, quiet });
} else if (a.mode === "read") {
  const quiet = await awaitQuiet();
  const cold = a.cold ? dropCaches() : (prewarm(a.source), false);
  const t = await timed(async () => {
    const h = await fs.open(a.source, "r");
    let off = 0;
    for (const b of buffers) {
      for (let done = 0; done < b.byteLength; ) {
        const { bytesRead } = await h.read(b, done, Math.min(READ, b.byteLength - done), off + done);
        if (bytesRead === 0) throw new Error("short file");
        done += bytesRead;
      }
      off += b.byteLength;
    }
    await h.close();
  });
  report({ seconds: t.seconds, cpu: t.cpu, bytes: size, cold, quiet });
} else {
  throw new Error(`unknown mode ${a.mode}`);
}
