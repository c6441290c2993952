import type { AtomicWrite } from "./byte-source.js";
import type { CheckpointIO } from "./checkpoint-io.js";

/**
 * Writes `path` through the IO's atomic write: `write` fills it, then it is committed; if anything
 * fails it is aborted (whatever was at `path` stays as it was) and the error is rethrown. Every
 * writer of a checkpoint file goes through this one place.
 */
export async function writeAtomically(io: CheckpointIO, path: string, write: (out: AtomicWrite) => Promise<void>): Promise<void> {
  const out = await io.openWrite(path);
  try {
    await write(out);
    await out.commit();
  } catch (err) {
    await out.abort();
    throw err;
  }
}

/** {@link writeAtomically} of bytes held in memory (metadata, an index, a pointer file). */
export function writeBytesAtomically(io: CheckpointIO, path: string, bytes: Uint8Array): Promise<void> {
  return writeAtomically(io, path, (out) => out.write(bytes));
}
