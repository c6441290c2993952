/** Helpers that build small archives with our writer and locate their records for patching. */
import { ZipWriter, type ZipWriterOptions } from "../../src/formats/zip/writer.js";
import { MemorySink } from "./memory-io.js";

export async function writeArchive(entries: ReadonlyArray<readonly [string, Uint8Array]>, options?: ZipWriterOptions): Promise<Uint8Array> {
  const sink = new MemorySink();
  const writer = new ZipWriter(sink, options);
  for (const [name, data] of entries) await writer.addEntry(name, data, data.length);
  await writer.finish();
  return sink.bytes();
}

export const text = (s: string) => new TextEncoder().encode(s);

export function pattern(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** The layout of an archive without a comment or zip64: where each central header and the EOCD are. */
export function layout(bytes: Uint8Array): { eocd: number; cdOffset: number; central: Array<{ at: number; name: string; localOffset: number }> } {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const eocd = bytes.length - 22;
  if (v.getUint32(eocd, true) !== 0x06054b50) throw new Error("test helper: no plain EOCD at the end");
  const count = v.getUint16(eocd + 10, true);
  const cdOffset = v.getUint32(eocd + 16, true);
  const central = [];
  let p = cdOffset;
  for (let i = 0; i < count; i++) {
    const n = v.getUint16(p + 28, true);
    const e = v.getUint16(p + 30, true);
    const c = v.getUint16(p + 32, true);
    central.push({ at: p, name: new TextDecoder().decode(bytes.subarray(p + 46, p + 46 + n)), localOffset: v.getUint32(p + 42, true) });
    p += 46 + n + e + c;
  }
  return { eocd, cdOffset, central };
}

export function dataView(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Byte equality without vitest's slow element-by-element diff of large arrays. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}
