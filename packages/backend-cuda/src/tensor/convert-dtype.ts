import { decodeBytes, encodeValues, StrictLoadError, type DType } from "@savepoint/core";

const INT_RANGES: Partial<Record<DType, [bigint, bigint]>> = {
  int8: [-(2n ** 7n), 2n ** 7n - 1n],
  int16: [-(2n ** 15n), 2n ** 15n - 1n],
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint8: [0n, 2n ** 8n - 1n],
  uint16: [0n, 2n ** 16n - 1n],
  uint32: [0n, 2n ** 32n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
};

const FLOATS = new Set<DType>(["float64", "float32", "float16", "bfloat16"]);

/**
 * Re-encodes checkpoint bytes of dtype `from` as `to`, the dtype of the device tensor being
 * loaded into (a device tensor keeps its dtype, as `torch.Tensor.copy_` does). Floats narrow with
 * rounding; integers must fit the target exactly, or a `StrictLoadError` names the key and value
 * before anything reaches the device.
 */
export function convertDType(bytes: Uint8Array, from: DType, to: DType, key: string): Uint8Array {
  if (from === to) return bytes;
  const complex = (d: DType) => d === "complex64" || d === "complex128";
  if (complex(from) !== complex(to)) {
    throw new StrictLoadError(`${key}: the checkpoint holds ${from} values but the device tensor is ${to}; savepoint converts between real dtypes (or between complex ones) only. Load into a ${from} tensor.`, { subject: key });
  }
  const values = decodeBytes(from, bytes);
  if (to === "bool") return Uint8Array.from(values as ArrayLike<number | bigint>, (v) => (v ? 1 : 0));
  if (FLOATS.has(to) || complex(to)) {
    const numbers = values instanceof BigInt64Array || values instanceof BigUint64Array ? Float64Array.from(values, Number) : values;
    return encodeValues(to === "complex64" ? "float32" : to === "complex128" ? "float64" : to, numbers as ArrayLike<number>);
  }
  const range = INT_RANGES[to];
  if (!range) throw new StrictLoadError(`${key}: cannot convert ${from} checkpoint values to a ${to} device tensor. Load into a ${from} tensor.`, { subject: key });
  const ints: bigint[] = new Array<bigint>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    const n = typeof v === "bigint" ? v : Number.isFinite(v) ? BigInt(Math.trunc(v)) : undefined;
    if (n === undefined || n < range[0] || n > range[1]) {
      throw new StrictLoadError(`${key}: value ${String(v)} at index ${i} does not fit the ${to} device tensor. Load into a tensor of the checkpoint's dtype (${from}) instead.`, { subject: key });
    }
    ints[i] = n;
  }
  return to === "int64" || to === "uint64" ? encodeValues(to, ints) : encodeValues(to, ints.map(Number));
}
