import { InvalidArgumentError } from "../../errors.js";
import type { ByteSink } from "../../io/byte-source.js";
import { numel, type TensorSource } from "../../tensor/tensor-source.js";
import { itemSize } from "../../dtype.js";
import { tensorCrcs, withChecksums } from "./checksums.js";
import { encodeSafetensorsHeader } from "./header.js";

/** Options of {@link writeSafetensors}. */
export interface WriteSafetensorsOptions {
  /**
   * Add `savepoint.crc32` (each tensor's CRC-32) and `savepoint.header_crc32` to `__metadata__`,
   * so savepoint's reader can detect damage. Costs one extra pass over every tensor's
   * `chunks()` before writing, since the header precedes the data and a `ByteSink` only appends.
   * @default false
   */
  readonly checksums?: boolean;
  /** Chunk size for that extra pass. @default the source's default (8 MiB) */
  readonly chunkBytes?: number;
}

/**
 * Writes a safetensors file to `sink`: header first, then each tensor's `chunks()` streamed
 * straight through, so peak memory is one chunk rather than the model.
 */
export async function writeSafetensors(
  sink: ByteSink,
  tensors: { name: string; tensor: TensorSource }[],
  metadata?: Record<string, string>,
  options: WriteSafetensorsOptions = {},
): Promise<void> {
  const entries = tensors.map(({ name, tensor }) => ({ name, dtype: tensor.dtype, shape: tensor.shape }));
  // Names, dtypes and shapes are checked before the (possibly long) checksum pass.
  let { header, offsets } = encodeSafetensorsHeader(entries, metadata);

  for (const { name, tensor } of tensors) {
    // The header is computed from dtype and shape; a source whose byteLength disagrees would
    // shift every later offset, so catch it before writing anything.
    const expected = numel(tensor.shape) * itemSize(tensor.dtype);
    if (tensor.byteLength !== expected) {
      throw new InvalidArgumentError(
        `tensor ${JSON.stringify(name)} declares ${tensor.byteLength} bytes but a ${tensor.dtype} tensor of shape [${tensor.shape.join(", ")}] holds ${expected}; fix the tensor source.`,
        { subject: name },
      );
    }
  }

  if (options.checksums) {
    ({ header, offsets } = encodeSafetensorsHeader(entries, withChecksums(entries, await tensorCrcs(tensors, options.chunkBytes), metadata)));
  }

  const start = sink.position;
  await sink.write(header);
  const order = tensors.map((_, i) => i).sort((i, j) => offsets[i]![0] - offsets[j]![0] || offsets[i]![1] - offsets[j]![1]);
  let total = 0;
  for (const i of order) {
    const { name, tensor } = tensors[i]!;
    let written = 0;
    for await (const chunk of tensor.chunks()) {
      if (written + chunk.byteLength > tensor.byteLength) {
        throw new InvalidArgumentError(
          `tensor ${JSON.stringify(name)} streamed more than its ${tensor.byteLength} bytes; its chunks() disagrees with its dtype and shape.`,
          { subject: name },
        );
      }
      await sink.write(chunk);
      written += chunk.byteLength;
    }
    if (written !== tensor.byteLength) {
      throw new InvalidArgumentError(
        `tensor ${JSON.stringify(name)} streamed ${written} of its ${tensor.byteLength} bytes; its chunks() ended early.`,
        { subject: name },
      );
    }
    total += written;
  }
  // A sink that drops or duplicates bytes would leave offsets that lie; say so here, not at load.
  if (sink.position - start !== header.byteLength + total) {
    throw new InvalidArgumentError(
      `the sink advanced ${sink.position - start} bytes while ${header.byteLength + total} were written; the ByteSink does not track its position correctly.`,
    );
  }
}
