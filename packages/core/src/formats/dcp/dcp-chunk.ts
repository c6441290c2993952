import { itemSize, type DType } from "../../dtype.js";
import { CorruptCheckpointError, UnsupportedFormatError } from "../../errors.js";
import type { ByteSource } from "../../io/byte-source.js";
import { rangeSource } from "../../io/range-source.js";
import { isStoredTensor } from "../../tensor/stored-tensor.js";
import { numel } from "../../tensor/tensor-source.js";
import type { SafetyMode } from "../format.js";
import { readTorchZip } from "../torch/read-torch-zip.js";
import type { DcpChunk } from "./dcp-metadata.js";

const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04];

/** Reads byte ranges of one chunk's own row-major data. */
export type ChunkBytes = (offset: number, length: number, into?: Uint8Array) => Promise<Uint8Array>;

export interface ChunkReadOptions {
  readonly safe: SafetyMode;
  readonly verify: boolean;
}

/**
 * The bytes of one DCP chunk, opened on first use. DCP as Lightning and Megatron write it stores
 * each chunk as a complete small `torch.save` zip at `[offset, offset + length)` of its file;
 * writers without that wrapping store the raw bytes, recognised by their exact length. Whether the
 * stored length fits the chunk's dtype and shape is therefore known only at that first use, when
 * the chunk's leading bytes are read; a mismatch fails that read with `CorruptCheckpointError`.
 */
export function chunkBytes(file: ByteSource, chunk: DcpChunk, dtype: DType, key: string, options: ChunkReadOptions): ChunkBytes {
  const { storage } = chunk;
  const name = `${file.name}[${storage.offset}:${storage.offset + storage.length}] ("${key}" chunk at (${chunk.offsets.join(", ")}))`;
  const expected = numel(chunk.sizes) * itemSize(dtype);
  let opened: Promise<ChunkBytes> | undefined;

  const open = async (): Promise<ChunkBytes> => {
    if (storage.transforms.length > 0) {
      throw new UnsupportedFormatError(`${name} is stored with the transforms ${storage.transforms.join(", ")}, which savepoint does not apply yet.`, { subject: name });
    }
    const segment = rangeSource(file, storage.offset, storage.length, name);
    const raw: ChunkBytes = (o, l, into) => segment.read(o, l, into);
    const head = storage.length >= 4 ? await segment.read(0, 4) : new Uint8Array(0);
    const zipped = ZIP_MAGIC.every((b, i) => head[i] === b);
    if (!zipped) {
      if (storage.length === expected) return raw;
      throw new CorruptCheckpointError(`${name} is neither a torch zip nor the ${expected} raw bytes of a ${dtype} chunk of shape (${chunk.sizes.join(", ")}).`, { subject: name });
    }
    let tensor: unknown;
    try {
      tensor = await readTorchZip(segment, { where: name, safe: options.safe, verify: options.verify });
    } catch (err) {
      // Raw data that happens to start like a zip: the exact length decides.
      if (storage.length === expected && err instanceof CorruptCheckpointError) return raw;
      throw err;
    }
    if (!isStoredTensor(tensor) || tensor.dtype !== dtype || numel(tensor.shape) !== numel(chunk.sizes)) {
      const what = isStoredTensor(tensor) ? `a ${tensor.dtype} tensor of shape (${tensor.shape.join(", ")})` : "no tensor";
      throw new CorruptCheckpointError(`${name} holds ${what}, but the metadata describes a ${dtype} chunk of shape (${chunk.sizes.join(", ")}).`, { subject: name });
    }
    return (o, l, into) => tensor.readRange(o, l, into);
  };

  return async (offset, length, into) => {
    opened ??= open();
    let read: ChunkBytes;
    try {
      read = await opened;
    } catch (err) {
      opened = undefined; // not cached: a transient failure (a file reopening) may pass next time
      throw err;
    }
    return read(offset, length, into);
  };
}
