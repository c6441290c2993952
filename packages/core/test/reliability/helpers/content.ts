/**
 * The content of "version v" of the crash and concurrency tests: every byte is v's low byte and
 * every 4 KiB page starts with v itself, so a file mixing two versions (at any chunk boundary) has
 * a content hash that matches neither. Cheap to produce: a fill and one store per page.
 */
export function fillVersion(raw: Uint8Array, version: number): Uint8Array {
  raw.fill(version & 0xff);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  for (let at = 0; at + 4 <= raw.byteLength; at += 4096) view.setUint32(at, version, true);
  return raw;
}
