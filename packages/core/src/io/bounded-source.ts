import { CorruptCheckpointError, SavepointError } from "../errors.js";
import type { ByteSource } from "./byte-source.js";

/**
 * A {@link ByteSource} over a store's own read of `[offset, offset + length)`: every read is
 * checked against `size` first (a damaged header claiming bytes past the end fails there, naming
 * the file), and reads after `close` are refused. `read` receives checked ranges only, and the
 * caller's `into` buffer when there is one (filling it, or returning bytes to be copied into it).
 * For `CheckpointIO` implementations over memory, browser storage or the like.
 *
 * @example
 * ```ts
 * openRead: async (path) => boundedSource(path, bytes.length, async (offset, length) => bytes.subarray(offset, offset + length)),
 * ```
 */
export function boundedSource(name: string, size: number, read: (offset: number, length: number, into: Uint8Array | undefined) => Promise<Uint8Array>): ByteSource {
  let closed = false;
  return {
    name,
    size,
    async read(offset, length, into) {
      if (closed) throw new SavepointError(`read of ${name} after close.`);
      if (offset < 0 || length < 0 || offset + length > size) {
        throw new CorruptCheckpointError(`${name} is truncated or damaged: a record claims bytes [${offset}, ${offset + length}) but the file has ${size} bytes.`, { subject: name });
      }
      const bytes = await read(offset, length, into);
      if (!into || bytes === into) return bytes;
      into.set(bytes.subarray(0, length));
      return into;
    },
    async close() {
      closed = true;
    },
  };
}
