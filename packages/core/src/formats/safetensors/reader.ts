import type { ByteSource } from "../../io/byte-source.js";
import { LazyTensor } from "../../tensor/stored-tensor.js";
import { CheckedTensorBytes } from "./checksums.js";
import type { SafetensorsHeader } from "./header.js";

/** Per-tensor CRC-32s to check reads against (from `readChecksums`), and the file to name in errors. */
export interface TensorChecks {
  readonly crcs: ReadonlyMap<string, number>;
  readonly file: string;
}

/**
 * One `LazyTensor` per header entry (in file order), reading its bytes from the file on demand.
 * `source` may be an opener, so a file is opened only when some tensor is actually read; it is
 * opened once and shared. `where` names the file in each tensor's `location`. With `checks`, every
 * tensor's bytes are checked against its CRC-32 as they are read.
 */
export function lazyTensors(
  source: ByteSource | (() => Promise<ByteSource>),
  header: SafetensorsHeader,
  where: string,
  checks?: TensorChecks,
): Map<string, LazyTensor> {
  let opened: Promise<ByteSource> | undefined;
  const getSource = (): Promise<ByteSource> => {
    if (typeof source !== "function") return Promise.resolve(source);
    if (!opened) {
      opened = source();
      // Forget a failed open so a later read can retry instead of replaying the error forever.
      opened.catch(() => {
        opened = undefined;
      });
    }
    return opened;
  };

  const out = new Map<string, LazyTensor>();
  for (const entry of header.entries) {
    const raw = async (offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> => {
      // Empty reads (empty tensors) need no file at all.
      if (length === 0) return into ? into.subarray(0, 0) : new Uint8Array(0);
      return (await getSource()).read(entry.begin + offset, length, into);
    };
    const crc = checks?.crcs.get(entry.name);
    let read = raw;
    if (crc !== undefined && entry.end > entry.begin) {
      const checked = new CheckedTensorBytes(raw, entry.end - entry.begin, crc, checks!.file, entry.name);
      read = (offset, length, into) => checked.read(offset, length, into);
    }
    out.set(entry.name, new LazyTensor(entry.dtype, entry.shape, read, `${where}:${entry.name}`));
  }
  return out;
}
