import { DTYPES, itemSize, type DType } from "../../src/dtype.js";
import { HostTensor } from "../../src/tensor/stored-tensor.js";
import { numel } from "../../src/tensor/tensor-source.js";
import type { TensorData } from "../../src/tensor/typed-arrays.js";

/** Float64 sum of the finite values and a count of the others, as expected.json records them. */
export function sumOf(data: TensorData): { sum: number; nonfinite: number } {
  let sum = 0;
  let nonfinite = 0;
  const values = data as ArrayLike<number | bigint>;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    const x = typeof v === "bigint" ? Number(v) : v;
    if (Number.isFinite(x)) sum += x;
    else nonfinite++;
  }
  return { sum, nonfinite };
}

/** A hand-built safetensors file: 8-byte length (or `claimedLength`), header text, data. */
export function rawFile(header: string | Uint8Array, data: Uint8Array | number = 0, claimedLength?: bigint): Uint8Array {
  const h = typeof header === "string" ? new TextEncoder().encode(header) : header;
  const d = typeof data === "number" ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + h.byteLength + d.byteLength);
  new DataView(out.buffer).setBigUint64(0, claimedLength ?? BigInt(h.byteLength), true);
  out.set(h, 8);
  out.set(d, 8 + h.byteLength);
  return out;
}

/** Every dtype the safetensors format has a code for (complex128 has none). */
export const SAFETENSORS_DTYPES = DTYPES.filter((d) => d !== "complex128");

/** Deterministic pseudo-random bytes; bool gets 0/1 since other bytes are not valid bools. */
export function randomTensor(dtype: DType, shape: number[], seed: number): HostTensor {
  const n = numel(shape) * itemSize(dtype);
  const raw = new Uint8Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    raw[i] = dtype === "bool" ? (s >>> 0) & 1 : (s >>> 0) & 0xff;
  }
  return new HostTensor(dtype, shape, raw);
}

export function sampleTensors(): { name: string; tensor: HostTensor }[] {
  const out: { name: string; tensor: HostTensor }[] = [];
  SAFETENSORS_DTYPES.forEach((d, i) => {
    out.push({ name: `t.${d}`, tensor: randomTensor(d, [3, 5], 100 + i) });
    out.push({ name: `scalar.${d}`, tensor: randomTensor(d, [], 200 + i) });
    out.push({ name: `empty.${d}`, tensor: randomTensor(d, [0], 300 + i) });
  });
  out.push({ name: "empty2d", tensor: randomTensor("float32", [4, 0, 2], 1) });
  out.push({ name: "odd", tensor: randomTensor("uint8", [7], 2) });
  out.push({ name: "ünïcode ✓ 𝔵", tensor: randomTensor("float16", [2, 3], 3) });
  return out;
}

