/**
 * CRC-32 (IEEE 802.3, the zip checksum), incremental: `crc32(b, crc32(a)) === crc32(concat(a, b))`.
 */

type Crc32Function = (data: Uint8Array, previous?: number) => number;

// zlib's CRC takes a 32-bit length; feeding it bounded slices keeps huge buffers safe.
const NATIVE_SLICE = 1 << 30;

/**
 * Node's zlib.crc32 (Node >= 20.15) is several times faster than JS. It is looked up at runtime,
 * not imported, so browser bundles of this module carry no `node:` import.
 */
function findNativeCrc32(): Crc32Function | undefined {
  try {
    const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
    const zlib = proc?.getBuiltinModule?.("node:zlib") as { crc32?: unknown } | undefined;
    const native = zlib?.crc32;
    if (typeof native !== "function") return undefined;
    return (data, previous) => (native as (d: Uint8Array, v: number) => number)(data, previous ?? 0) >>> 0;
  } catch {
    return undefined;
  }
}

const native = findNativeCrc32();

let tables: Uint32Array | undefined;

/** Slice-by-8 tables: table k (at k * 256) advances the CRC by one byte followed by k zero bytes. */
function slicingTables(): Uint32Array {
  if (tables) return tables;
  const t = new Uint32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n]!;
    for (let k = 1; k < 8; k++) {
      c = t[c & 0xff]! ^ (c >>> 8);
      t[k * 256 + n] = c >>> 0;
    }
  }
  tables = t;
  return t;
}

/** Pure-JS CRC-32 (slice-by-8). Exported so tests can compare it with the native path. */
export function crc32Portable(data: Uint8Array, previous = 0): number {
  const t = slicingTables();
  let crc = ~previous >>> 0;
  const n = data.length;
  let i = 0;
  for (const end = n - (n % 8); i < end; i += 8) {
    crc ^= data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    crc =
      t[7 * 256 + (crc & 0xff)]! ^
      t[6 * 256 + ((crc >>> 8) & 0xff)]! ^
      t[5 * 256 + ((crc >>> 16) & 0xff)]! ^
      t[4 * 256 + (crc >>> 24)]! ^
      t[3 * 256 + data[i + 4]!]! ^
      t[2 * 256 + data[i + 5]!]! ^
      t[256 + data[i + 6]!]! ^
      t[data[i + 7]!]!;
  }
  for (; i < n; i++) crc = t[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}

/** Whether `crc32` uses Node's zlib (true) or the portable JS tables (false). */
export const crc32IsNative: boolean = native !== undefined;

/** CRC-32 of `data`, continuing from `previous` (the CRC of the bytes before it; 0 to start). */
export function crc32(data: Uint8Array, previous = 0): number {
  if (!native) return crc32Portable(data, previous);
  let crc = previous >>> 0;
  for (let at = 0; at < data.length; at += NATIVE_SLICE) {
    crc = native(data.subarray(at, Math.min(data.length, at + NATIVE_SLICE)), crc);
  }
  return crc;
}
