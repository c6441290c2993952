/** A byte range of a tensor: one chunk of a transfer. */
export interface ChunkRange {
  readonly index: number;
  readonly offset: number;
  readonly length: number;
}

/**
 * Splits `byteLength` bytes into consecutive chunks of `chunkBytes` (the last may be shorter).
 * A zero-byte tensor has no chunks.
 */
export function chunkRanges(byteLength: number, chunkBytes: number): ChunkRange[] {
  if (!Number.isSafeInteger(byteLength) || byteLength < 0) throw new RangeError(`byteLength must be a non-negative integer, got ${byteLength}`);
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1) throw new RangeError(`chunkBytes must be a positive integer, got ${chunkBytes}`);
  const out: ChunkRange[] = [];
  for (let offset = 0, index = 0; offset < byteLength; offset += chunkBytes, index++) {
    out.push({ index, offset, length: Math.min(chunkBytes, byteLength - offset) });
  }
  return out;
}
