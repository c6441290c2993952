import type { DType } from "../dtype.js";
import { UnsupportedFormatError } from "../errors.js";

/** The JavaScript array type `StoredTensor.data()` returns for each dtype. */
export type TensorData =
  | Float64Array
  | Float32Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Uint32Array
  | Int16Array
  | Uint16Array
  | Int8Array
  | Uint8Array;

function aligned(bytes: Uint8Array, size: number): Uint8Array {
  // Typed-array views need aligned offsets; copy only when the record is not aligned.
  return bytes.byteOffset % size === 0 ? bytes : bytes.slice();
}

/**
 * Decodes little-endian raw bytes to the natural JavaScript array of `dtype`. float16, bfloat16
 * and float8 widen to Float32Array; complex types give interleaved (re, im) floats; bool gives 0/1.
 */
export function decodeBytes(dtype: DType, bytes: Uint8Array): TensorData {
  switch (dtype) {
    case "float64": {
      const b = aligned(bytes, 8);
      return new Float64Array(b.buffer, b.byteOffset, b.byteLength / 8);
    }
    case "float32":
    case "complex64": {
      const b = aligned(bytes, 4);
      return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    }
    case "complex128": {
      const b = aligned(bytes, 8);
      return new Float64Array(b.buffer, b.byteOffset, b.byteLength / 8);
    }
    case "int64": {
      const b = aligned(bytes, 8);
      return new BigInt64Array(b.buffer, b.byteOffset, b.byteLength / 8);
    }
    case "uint64": {
      const b = aligned(bytes, 8);
      return new BigUint64Array(b.buffer, b.byteOffset, b.byteLength / 8);
    }
    case "int32": {
      const b = aligned(bytes, 4);
      return new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    }
    case "uint32": {
      const b = aligned(bytes, 4);
      return new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    }
    case "int16": {
      const b = aligned(bytes, 2);
      return new Int16Array(b.buffer, b.byteOffset, b.byteLength / 2);
    }
    case "uint16": {
      const b = aligned(bytes, 2);
      return new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2);
    }
    case "int8":
      return new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    case "uint8":
    case "bool":
      return bytes;
    case "float16":
      return halfToFloat32(bytes);
    case "bfloat16":
      return bfloat16ToFloat32(bytes);
    case "float8_e4m3fn":
    case "float8_e5m2":
      return float8ToFloat32(dtype, bytes);
  }
}

/**
 * A byte buffer whose contents are left as they are (not zeroed) where the runtime allows: Node's
 * `Buffer.allocUnsafeSlow`, which skips clearing memory the caller overwrites anyway. Elsewhere, a
 * plain Uint8Array. Never pooled, so the buffer owns its whole ArrayBuffer.
 */
export function uninitializedBytes(length: number): Uint8Array {
  const B = (globalThis as { Buffer?: { allocUnsafeSlow?: (n: number) => Uint8Array } }).Buffer;
  // Small buffers: a plain array is cheaper than a separately allocated backing store.
  if (typeof B?.allocUnsafeSlow === "function" && length >= 64 << 10) {
    const b = B.allocUnsafeSlow(length);
    return new Uint8Array(b.buffer, b.byteOffset, length);
  }
  return new Uint8Array(length);
}

/** Raw little-endian bytes of a typed array (a view, no copy). */
export function bytesOf(data: ArrayBufferView): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** IEEE half precision bits to float32 values. */
export function halfToFloat32(bytes: Uint8Array): Float32Array {
  const n = bytes.byteLength >> 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const h = bytes[2 * i]! | (bytes[2 * i + 1]! << 8);
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) out[i] = sign * frac * 2 ** -24;
    else if (exp === 31) out[i] = frac ? NaN : sign * Infinity;
    else out[i] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return out;
}

/** bfloat16 bits to float32 values (exact: bfloat16 is the top half of a float32). */
export function bfloat16ToFloat32(bytes: Uint8Array): Float32Array {
  const n = bytes.byteLength >> 1;
  const bits = new Uint32Array(n);
  for (let i = 0; i < n; i++) bits[i] = (bytes[2 * i]! | (bytes[2 * i + 1]! << 8)) << 16;
  return new Float32Array(bits.buffer);
}

function float8ToFloat32(dtype: "float8_e4m3fn" | "float8_e5m2", bytes: Uint8Array): Float32Array {
  const [expBits, bias] = dtype === "float8_e4m3fn" ? [4, 7] : [5, 15];
  const manBits = 7 - expBits;
  const out = new Float32Array(bytes.byteLength);
  for (let i = 0; i < bytes.byteLength; i++) {
    const v = bytes[i]!;
    const sign = v & 0x80 ? -1 : 1;
    const exp = (v >> manBits) & ((1 << expBits) - 1);
    const man = v & ((1 << manBits) - 1);
    if (dtype === "float8_e4m3fn" && exp === 15 && man === 7) out[i] = NaN;
    else if (dtype === "float8_e5m2" && exp === 31) out[i] = man ? NaN : sign * Infinity;
    else if (exp === 0) out[i] = sign * man * 2 ** (1 - bias - manBits);
    else out[i] = sign * (1 + man / (1 << manBits)) * 2 ** (exp - bias);
  }
  return out;
}

/** Converts values to the bytes of `dtype`, for building tensors from JavaScript numbers. */
export function encodeValues(dtype: DType, values: ArrayLike<number> | ArrayLike<bigint>): Uint8Array {
  const n = values.length;
  switch (dtype) {
    case "float64":
      return bytesOf(Float64Array.from(values as ArrayLike<number>));
    case "float32":
      return bytesOf(Float32Array.from(values as ArrayLike<number>));
    case "int64":
      return bytesOf(BigInt64Array.from(values as ArrayLike<number>, (v) => BigInt(v)));
    case "uint64":
      return bytesOf(BigUint64Array.from(values as ArrayLike<number>, (v) => BigInt(v)));
    case "int32":
      return bytesOf(Int32Array.from(values as ArrayLike<number>));
    case "uint32":
      return bytesOf(Uint32Array.from(values as ArrayLike<number>));
    case "int16":
      return bytesOf(Int16Array.from(values as ArrayLike<number>));
    case "uint16":
      return bytesOf(Uint16Array.from(values as ArrayLike<number>));
    case "int8":
      return bytesOf(Int8Array.from(values as ArrayLike<number>));
    case "uint8":
      return Uint8Array.from(values as ArrayLike<number>);
    case "bool":
      return Uint8Array.from(values as ArrayLike<number>, (v) => (v ? 1 : 0));
    case "float16": {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = float32ToHalfBits(Number(values[i]));
      return bytesOf(out);
    }
    case "bfloat16": {
      const f = Float32Array.from(values as ArrayLike<number>);
      const u = new Uint32Array(f.buffer);
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) {
        const x = u[i]!;
        // Round to nearest even, keeping NaN a NaN.
        out[i] = Number.isNaN(f[i]) ? 0x7fc0 : (x + 0x7fff + ((x >> 16) & 1)) >>> 16;
      }
      return bytesOf(out);
    }
    default:
      throw new UnsupportedFormatError(`building ${dtype} tensors from JavaScript values is not supported; pass raw bytes instead.`);
  }
}

function float32ToHalfBits(value: number): number {
  const f = new Float32Array([value]);
  const x = new Uint32Array(f.buffer)[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let man = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    man |= 0x800000;
    const shift = 14 - e;
    let half = man >> shift;
    const rest = man & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rest > mid || (rest === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (man >> 13);
  const rest = man & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++;
  e = half >> 10;
  return sign | half;
}
