import { CorruptCheckpointError } from "../errors.js";
import type { ByteSource } from "./byte-source.js";

/**
 * A window `[offset, offset + length)` of another source, seen as a file of its own: a torch zip
 * stored inside a DCP `.distcp` file opens through this with the ordinary zip reader. Reads are
 * bounds-checked against the window, so a record can never reach bytes outside it.
 */
export function rangeSource(source: ByteSource, offset: number, length: number, name: string): ByteSource {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > source.size) {
    throw new CorruptCheckpointError(`${name}: bytes [${offset}, ${offset + length}) lie outside ${source.name} (${source.size} bytes). The checkpoint is damaged.`, { subject: name });
  }
  return {
    name,
    size: length,
    async read(at, n, into) {
      if (at < 0 || n < 0 || at + n > length) {
        throw new CorruptCheckpointError(`${name} is damaged: a record claims bytes [${at}, ${at + n}) of a ${length}-byte segment.`, { subject: name });
      }
      return source.read(offset + at, n, into);
    },
    // The window does not own the file; its opener closes it.
    async close() {},
  };
}
