import { CorruptCheckpointError } from "@savepoint/core";

/**
 * Re-cuts a byte stream into chunks that hold whole elements of `itemBytes` each, so that every
 * chunk can be decoded (and written to the GPU) on its own. Chunks that are already aligned pass
 * through untouched; only an element split across two chunks is copied.
 */
export async function* alignedChunks(chunks: AsyncIterable<Uint8Array>, itemBytes: number, key: string): AsyncGenerator<Uint8Array> {
  let carry = new Uint8Array(0);
  for await (const chunk of chunks) {
    let data = chunk;
    if (carry.byteLength > 0) {
      data = new Uint8Array(carry.byteLength + chunk.byteLength);
      data.set(carry);
      data.set(chunk, carry.byteLength);
    }
    const whole = data.byteLength - (data.byteLength % itemBytes);
    if (whole > 0) yield data.subarray(0, whole);
    // Copied: the producer may reuse `chunk` once we pull the next one.
    carry = data.slice(whole);
  }
  if (carry.byteLength > 0) throw new CorruptCheckpointError(`${key}: the tensor's bytes end inside an element (${carry.byteLength} stray bytes of a ${itemBytes}-byte element); the checkpoint is damaged.`, { subject: key });
}
