import { isStoredTensor, type TensorSource } from "@savepoint/core";

/** All bytes of a source in one host buffer (for dtype conversion, which needs every value). */
export async function readAll(source: TensorSource): Promise<Uint8Array> {
  if (isStoredTensor(source)) return source.readRange(0, source.byteLength, new Uint8Array(source.byteLength));
  const out = new Uint8Array(source.byteLength);
  let offset = 0;
  for await (const chunk of source.chunks()) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/** True for a source whose bytes already sit in host memory, so reading it cannot fail halfway. */
export function isHostResident(source: TensorSource): boolean {
  const raw = (source as { raw?: unknown }).raw;
  return isStoredTensor(source) && raw instanceof Uint8Array;
}
