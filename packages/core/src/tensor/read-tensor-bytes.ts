import { isStoredTensor } from "./stored-tensor.js";
import type { TensorSource } from "./tensor-source.js";
import { uninitializedBytes } from "./typed-arrays.js";

/**
 * All bytes of a tensor in one new host buffer, read straight into place when the source allows
 * ranged reads (a stored tensor), else gathered from its chunks. For the few places that need
 * every value at once (a dtype conversion, a gather); writers stream `chunks()` instead.
 *
 * @example
 * ```ts
 * const bytes = await readTensorBytes(checkpoint.model["fc.weight"]);
 * ```
 */
export async function readTensorBytes(source: TensorSource): Promise<Uint8Array> {
  // Every byte is overwritten before the buffer is used, so it need not be zeroed first.
  const out = uninitializedBytes(source.byteLength);
  if (isStoredTensor(source)) return source.readRange(0, source.byteLength, out);
  let off = 0;
  for await (const chunk of source.chunks()) {
    out.set(chunk, off);
    off += chunk.byteLength;
  }
  return out;
}
