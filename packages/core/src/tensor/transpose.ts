import { itemSize } from "../dtype.js";
import { InvalidArgumentError } from "../errors.js";
import { HostTensor, isStoredTensor } from "./stored-tensor.js";
import type { TensorSource } from "./tensor-source.js";

/**
 * Transposes a 2-D tensor (rows ↔ columns), e.g. a PyTorch Linear weight `[out, in]` into a tfjs
 * Dense kernel `[in, out]`. Works on raw bytes, so any dtype keeps its exact bits.
 *
 * @example
 * ```ts
 * await fabric.loadRaw("linear.pt", model, {
 *   map: async (k, v) => (k === "fc.weight" ? { key: "dense.kernel", value: await transpose2d(v as StoredTensor) } : null),
 * });
 * ```
 */
export async function transpose2d(tensor: TensorSource): Promise<HostTensor> {
  if (tensor.shape.length !== 2) throw new InvalidArgumentError(`transpose2d needs a 2-D tensor, got shape [${tensor.shape.join(", ")}].`);
  const [rows, cols] = tensor.shape as [number, number];
  const size = itemSize(tensor.dtype);
  let src: Uint8Array;
  if (isStoredTensor(tensor)) src = await tensor.bytes();
  else {
    src = new Uint8Array(tensor.byteLength);
    let off = 0;
    for await (const c of tensor.chunks()) {
      src.set(c, off);
      off += c.byteLength;
    }
  }
  const out = new Uint8Array(src.byteLength);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const from = (r * cols + c) * size;
      out.set(src.subarray(from, from + size), (c * rows + r) * size);
    }
  }
  return new HostTensor(tensor.dtype, [cols, rows], out);
}
