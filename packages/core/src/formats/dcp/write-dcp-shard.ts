import type { DType } from "../../dtype.js";
import { InvalidArgumentError, SavepointError } from "../../errors.js";
import type { AtomicWrite } from "../../io/byte-source.js";
import type { CheckpointIO } from "../../io/checkpoint-io.js";
import { joinPath } from "../../io/paths.js";
import type { TensorSource } from "../../tensor/tensor-source.js";
import { torchZipFormat } from "../torch/torch-zip-format.js";
import { writeAtomically } from "../../io/write-atomically.js";

/** What one rank writes into its `.distcp` file. */
export type DcpWriteItem =
  | {
      readonly kind: "tensor";
      /** Flattened key, e.g. `model.fc1.weight`. */
      readonly key: string;
      /** The full (global) shape of the tensor this chunk belongs to. */
      readonly size: readonly number[];
      /** Where the chunk (`source.shape` elements) starts in the full tensor, per dimension. */
      readonly offsets: readonly number[];
      readonly source: TensorSource;
    }
  | {
      readonly kind: "bytes";
      readonly key: string;
      /** Any value the torch writer stores (numbers, strings, tuples, lists...). */
      readonly value: unknown;
    };

/**
 * Where one item went: plain data, so it can travel through a collective to the rank that writes
 * the metadata.
 */
export interface DcpWrittenItem {
  readonly kind: "tensor" | "bytes";
  readonly key: string;
  readonly file: string;
  readonly offset: number;
  readonly length: number;
  /** Tensors only. */
  readonly dtype?: DType;
  readonly size?: number[];
  readonly offsets?: number[];
  readonly sizes?: number[];
}

export interface DcpShardWriteOptions {
  readonly io: CheckpointIO;
  /** The checkpoint folder. */
  readonly folder: string;
  /** File name inside it, e.g. `__1_0.distcp`. */
  readonly file: string;
  readonly chunkBytes: number;
}

/**
 * Writes one rank's `.distcp` file as torch's FileSystemWriter does: every item, tensor chunk or
 * bytes, is a complete small `torch.save` zip at its own `[offset, offset + length)`. Tensor bytes
 * stream through; the file appears atomically (the IO's temporary-then-rename).
 */
export async function writeDcpShard(items: readonly DcpWriteItem[], options: DcpShardWriteOptions): Promise<DcpWrittenItem[]> {
  for (const item of items) if (item.kind === "tensor") checkChunk(item);
  const path = joinPath(options.folder, options.file);
  const written: DcpWrittenItem[] = [];
  await writeAtomically(options.io, path, async (out) => {
    for (const item of items) {
      const offset = out.position;
      const value = item.kind === "tensor" ? item.source : item.value;
      await torchZipFormat.write!(value, { io: embedded(out, path), path: `${path}[${item.key}]`, chunkBytes: options.chunkBytes });
      const where = { key: item.key, file: options.file, offset, length: out.position - offset };
      written.push(item.kind === "tensor" ? { kind: "tensor", ...where, dtype: item.source.dtype, size: [...item.size], offsets: [...item.offsets], sizes: [...item.source.shape] } : { kind: "bytes", ...where });
    }
  });
  return written;
}

function checkChunk(item: Extract<DcpWriteItem, { kind: "tensor" }>): void {
  const { key, size, offsets, source } = item;
  const fits = offsets.length === size.length && source.shape.length === size.length && size.every((d, i) => offsets[i]! >= 0 && offsets[i]! + source.shape[i]! <= d);
  if (!fits) {
    throw new InvalidArgumentError(`the chunk of "${key}" at offsets (${offsets.join(", ")}) with shape (${source.shape.join(", ")}) does not lie inside its tensor of shape (${size.join(", ")}).`, { subject: key });
  }
}

/**
 * A one-file IO whose "file" is the next stretch of an enclosing write: the torch writer encodes
 * each item into the shard file this way, and the shard file itself is committed once at the end.
 */
function embedded(out: AtomicWrite, path: string): CheckpointIO {
  const refuse = async (): Promise<never> => {
    throw new SavepointError(`${path}: an item being written cannot be read back.`);
  };
  return {
    name: `items of ${path}`,
    stat: async () => null,
    openRead: refuse,
    async openWrite() {
      const start = out.position;
      return {
        get position() {
          return out.position - start;
        },
        // Writes pass straight through, so the shard file's overlapping of big writes applies too.
        get concurrentWriteBytes() {
          return (out as { concurrentWriteBytes?: number }).concurrentWriteBytes;
        },
        write: (chunk) => out.write(chunk),
        // The shard file is committed (or aborted) as a whole by writeDcpShard.
        commit: async () => {},
        abort: async () => {},
      };
    },
  };
}
