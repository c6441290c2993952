/**
 * Byte-level conversions from numpy's memory layouts to savepoint's (little-endian, row-major).
 */

/** Reverses the bytes of every `unit`-byte word in place (big-endian to little-endian). */
export function byteswap(bytes: Uint8Array, unit: number): void {
  if (unit <= 1) return;
  for (let i = 0; i + unit <= bytes.length; i += unit) {
    for (let a = i, b = i + unit - 1; a < b; a++, b--) {
      const t = bytes[a]!;
      bytes[a] = bytes[b]!;
      bytes[b] = t;
    }
  }
}

/** Copies column-major (Fortran order) elements of `shape` into row-major order. */
export function fortranToRowMajor(bytes: Uint8Array, shape: readonly number[], itemSize: number): Uint8Array {
  const n = shape.reduce((a, b) => a * b, 1);
  if (n <= 1 || shape.filter((d) => d > 1).length <= 1) return bytes; // the two orders coincide
  const rank = shape.length;
  const rowStrides = new Array<number>(rank);
  let s = 1;
  for (let d = rank - 1; d >= 0; d--) {
    rowStrides[d] = s;
    s *= shape[d]!;
  }
  const out = new Uint8Array(bytes.length);
  // Walk the source in its own order (first index fastest), tracking the row-major destination.
  const idx = new Array<number>(rank).fill(0);
  let dest = 0;
  for (let e = 0; e < n; e++) {
    out.set(bytes.subarray(e * itemSize, (e + 1) * itemSize), dest * itemSize);
    for (let d = 0; d < rank; d++) {
      if (++idx[d]! < shape[d]!) {
        dest += rowStrides[d]!;
        break;
      }
      dest -= (shape[d]! - 1) * rowStrides[d]!;
      idx[d] = 0;
    }
  }
  return out;
}
