import { itemSize } from "../../dtype.js";
import { LazyTensor, type RangeReader } from "../../tensor/stored-tensor.js";
import type { ConcatenatedFiles } from "./concatenated-files.js";
import { dequantize } from "./dequantize.js";
import { QUANTIZED_ITEM_SIZE, type TfjsWeight } from "./manifest.js";

/**
 * The lazy tensor of one manifest weight. Plain weights read their bytes straight from the
 * group's shard files; quantized ones read only the stored elements that cover the requested
 * range and decode those, so nothing is cached between reads.
 */
export function weightTensor(weight: TfjsWeight, group: ConcatenatedFiles, where: string): LazyTensor {
  const location = `${where}:${weight.name}`;
  const q = weight.quantization;
  if (!q) {
    const read: RangeReader = (offset, length, into) => group.read(weight.offset + offset, length, into);
    return new LazyTensor(weight.dtype, weight.shape, read, location);
  }
  const outSize = itemSize(weight.dtype);
  const inSize = QUANTIZED_ITEM_SIZE[q.dtype];
  const dtype = weight.dtype as "float32" | "int32"; // the manifest parser allows only these with quantization
  const read: RangeReader = async (offset, length, into) => {
    if (length === 0) return into ? into.subarray(0, 0) : new Uint8Array(0);
    const first = Math.floor(offset / outSize);
    const end = Math.ceil((offset + length) / outSize);
    const stored = await group.read(weight.offset + first * inSize, (end - first) * inSize);
    const skip = offset - first * outSize;
    const bytes = dequantize(stored, q, dtype).subarray(skip, skip + length);
    if (!into) return bytes;
    into.set(bytes);
    return into;
  };
  return new LazyTensor(weight.dtype, weight.shape, read, location);
}
