import { itemSize, type DType } from "../../dtype.js";
import { CorruptCheckpointError } from "../../errors.js";
import { LazyTensor } from "../../tensor/stored-tensor.js";
import { numel } from "../../tensor/tensor-source.js";

/** Reads storage bytes: `(offset, length, into?)` relative to the storage start. */
export type StorageReader = (offset: number, length: number, into?: Uint8Array) => Promise<Uint8Array>;

/** Row-major strides of a shape. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i]!;
  }
  return strides;
}

/**
 * A lazy tensor over a view of a storage (`storage_offset`, `size`, `stride` as torch records
 * them). Contiguous views read their byte range directly; others are gathered into row-major order.
 * Every index the view can reach is checked against the storage before anything is read.
 */
export function viewTensor(dtype: DType, storageElements: number, offset: number, shape: readonly number[], stride: readonly number[], read: StorageReader, where: string): LazyTensor {
  const bad = (why: string) => new CorruptCheckpointError(`${where}: ${why}. The file is damaged.`, { subject: where });
  if (!Number.isSafeInteger(offset) || offset < 0) throw bad(`storage offset ${offset} is invalid`);
  if (shape.length !== stride.length) throw bad(`size has ${shape.length} dimensions but stride has ${stride.length}`);
  const n = numel(shape);
  if (n > 0) {
    let last = offset;
    for (let i = 0; i < shape.length; i++) {
      if (!Number.isSafeInteger(stride[i]) || stride[i]! < 0) throw bad(`stride ${stride[i]} is invalid`);
      last += (shape[i]! - 1) * stride[i]!;
    }
    if (last >= storageElements) throw bad(`the tensor reaches element ${last} of a storage of ${storageElements} elements`);
  }
  const size = itemSize(dtype);
  const expected = contiguousStrides(shape);
  const contiguous = n <= 1 || shape.every((d, i) => d === 1 || stride[i] === expected[i]);
  if (contiguous) {
    return new LazyTensor(dtype, shape, (off, len, into) => read(offset * size + off, len, into), where);
  }
  let gathered: Promise<Uint8Array> | undefined;
  const gather = async (): Promise<Uint8Array> => {
    let span = 0;
    for (let i = 0; i < shape.length; i++) span += (shape[i]! - 1) * stride[i]!;
    const src = await read(offset * size, (span + 1) * size);
    const out = new Uint8Array(n * size);
    const idx = new Array<number>(shape.length).fill(0);
    for (let e = 0; e < n; e++) {
      let s = 0;
      for (let d = 0; d < shape.length; d++) s += idx[d]! * stride[d]!;
      out.set(src.subarray(s * size, s * size + size), e * size);
      for (let d = shape.length - 1; d >= 0; d--) {
        if (++idx[d]! < shape[d]!) break;
        idx[d] = 0;
      }
    }
    return out;
  };
  return new LazyTensor(
    dtype,
    shape,
    async (off, len, into) => {
      const all = await (gathered ??= gather());
      const view = all.subarray(off, off + len);
      if (into) {
        into.set(view);
        return into;
      }
      return view;
    },
    where,
  );
}
