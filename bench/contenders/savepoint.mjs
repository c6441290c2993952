// savepoint itself: save / load / partial load / memory / async save of the benchmark state.
// One measurement per process; the runner passes a JSON object of arguments and reads RESULT.
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { args, awaitQuiet, dropCaches, gc, prewarm, rchar, report, resetPeak, rss, syncAll, timed } from "../lib/measure.mjs";
import { buildState, fingerprint, initTf, stateBytes } from "../lib/state.mjs";

const a = args();
// BENCH_CORE points at another build of the library (for A/B runs while changing it).
const { Fabric, NodeFileIO } = await import(process.env.BENCH_CORE ?? "@savepoint/core");
const base = rss().rss; // node + tfjs, before any state exists
await initTf();

/** NodeFileIO that counts the bytes savepoint asks to read. */
class CountingIO extends NodeFileIO {
  bytesRead = 0;
  async openRead(path) {
    const source = await super.openRead(path);
    const io = this;
    return {
      name: source.name,
      size: source.size,
      read(offset, length, into) {
        io.bytesRead += length;
        return source.read(offset, length, into);
      },
      close: () => source.close(),
    };
  }
}

/** NodeFileIO whose saves go nowhere: counts the bytes and drops them. */
class DiscardIO extends NodeFileIO {
  written = 0;
  async openWrite() {
    const io = this;
    let position = 0;
    return {
      get position() {
        return position;
      },
      async write(chunk) {
        position += chunk.byteLength;
        io.written += chunk.byteLength;
      },
      async commit() {},
      async abort() {},
    };
  }
}

const meta = () => JSON.parse(readFileSync(`${a.path}.json`, "utf8"));

/**
 * One untimed save and load of a tiny state first: a training loop saves many times in one
 * process, so its saves run compiled code; a single cold call would mostly time the JIT.
 */
async function warmUp() {
  const tiny = buildState(0.005, { seed: 3 });
  const p = `${a.path}.warmup`;
  await new Fabric().save(p, tiny);
  await new Fabric().load(p, tiny);
  rmSync(p, { force: true });
}

switch (a.mode) {
  case "reference": {
    // The checkpoint every reader reads, and what the readers must find in it.
    const state = buildState(a.scale, { optimizerAll: !!a.optimizerAll });
    await new Fabric().save(a.path, state);
    syncAll();
    const modelBytes = state.model.weights.reduce((n, w) => n + w.read().size * 4, 0);
    writeFileSync(`${a.path}.json`, JSON.stringify({ fingerprint: fingerprint(state), stateBytes: stateBytes(state), modelBytes, fileBytes: statSync(a.path).size }));
    report({ fileBytes: statSync(a.path).size, stateBytes: stateBytes(state), modelBytes });
    break;
  }
  case "save": {
    const state = buildState(a.scale, { optimizer: a.optimizer !== false });
    rmSync(a.path, { force: true });
    await warmUp();
    const quiet = await awaitQuiet();
    // Every writer starts with no dirty pages left by an earlier run.
    syncAll();
    // `discard`: the same save into a sink that drops the bytes: savepoint's own work, no I/O.
    const fabric = a.discard ? new Fabric({ io: new DiscardIO() }) : new Fabric();
    const t = await timed(() => fabric.save(a.path, state));
    const fileBytes = a.discard ? fabric.io.written : statSync(a.path).size;
    rmSync(a.path, { force: true });
    report({ seconds: t.seconds, cpu: t.cpu, bytes: fileBytes, stateBytes: stateBytes(state), quiet });
    break;
  }
  case "load": {
    const state = buildState(a.scale, { seed: 2 });
    const m = meta();
    await warmUp();
    const quiet = await awaitQuiet();
    const cold = a.cold ? dropCaches() : (prewarm(a.path), false);
    const fabric = new Fabric({ verify: a.verify !== false });
    const t = await timed(() => fabric.load(a.path, state));
    const correct = fingerprint(state) === m.fingerprint;
    report({ seconds: t.seconds, cpu: t.cpu, bytes: statSync(a.path).size, cold, correct, quiet });
    break;
  }
  case "partial": {
    // Only `model` from a checkpoint whose optimizer state is twice the model.
    const state = buildState(a.scale, { seed: 2, optimizer: false });
    const m = meta();
    await warmUp();
    prewarm(a.path);
    const io = new CountingIO();
    const r0 = rchar();
    const t = await timed(() => new Fabric({ io }).load(a.path, { model: state.model }));
    const syscallBytes = rchar() - r0;
    report({ seconds: t.seconds, bytesRead: io.bytesRead, syscallBytes, modelBytes: m.modelBytes, fileBytes: m.fileBytes, correct: fingerprint(state) === m.fingerprint });
    break;
  }
  case "memory": {
    // Peak RSS (VmHWM) while saving and while loading, over the process before the state existed.
    const state = buildState(a.scale, { optimizer: a.optimizer !== false });
    const bytes = stateBytes(state);
    gc();
    const built = rss().rss;
    const fabric = new Fabric();
    resetPeak();
    await fabric.save(a.path, state);
    const savePeak = rss().hwm;
    gc();
    const beforeLoad = rss().rss;
    resetPeak();
    await fabric.load(a.path, state);
    const loadPeak = rss().hwm;
    rmSync(a.path, { force: true });
    report({ stateBytes: bytes, base, built, savePeak, beforeLoad, loadPeak, saveOverhead: savePeak - base - bytes, loadOverhead: loadPeak - base - bytes });
    break;
  }
  case "async": {
    // Time the caller is blocked by save(..., { async: true }) against a synchronous save.
    const state = buildState(a.scale);
    const fabric = new Fabric();
    const paths = [0, 1, 2].map((i) => `${a.path}.${i}`);
    for (const p of paths) rmSync(p, { force: true });
    await warmUp();
    const quiet = await awaitQuiet();
    syncAll();
    const sync = await timed(() => fabric.save(paths[0], state));
    syncAll();
    const first = await timed(() => fabric.save(paths[1], state, { async: true }));
    const firstDone = await timed(() => first.value.done);
    syncAll();
    // The second async save reuses the staging buffers of the first.
    const second = await timed(() => fabric.save(paths[2], state, { async: true }));
    const secondDone = await timed(() => second.value.done);
    const ok = paths.every((p) => existsSync(p));
    for (const p of paths) rmSync(p, { force: true });
    report({ sync: sync.seconds, blockedFirst: first.seconds, blockedReused: second.seconds, writeFirst: firstDone.seconds, writeReused: secondDone.seconds, stagingBytes: fabric.stagingBytes, ok, quiet });
    break;
  }
  default:
    throw new Error(`unknown mode ${a.mode}`);
}
