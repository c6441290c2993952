import { bytesOf, HostTensor, itemSize, valuesFor, type DType } from "@savepoint/core";

/**
 * tfjs-backend-webgpu keeps every non-complex dtype in 4-byte words: float32 as f32, int32 and
 * bool as i32 (WGSL has no byte storage). These are the dtypes a GPU buffer can hold.
 */
export type WordDType = "float32" | "int32" | "bool";

/** Bytes per element in a tfjs-webgpu buffer. */
export const WORD_BYTES = 4;

/**
 * Checkpoint bytes of `from` (whole elements) as the GPU words of a `to` tensor. Same-dtype float32
 * and int32 pass through without a copy; everything else goes through core's `valuesFor`, which
 * widens float16/bfloat16/float64 and range-checks integers (StrictLoadError naming `key`).
 */
export async function toGpuWords(chunk: Uint8Array, from: DType, to: WordDType, key: string): Promise<Uint8Array> {
  if (from === to && to !== "bool") return chunk;
  const values = await valuesFor(new HostTensor(from, [chunk.byteLength / itemSize(from)], chunk), to, key);
  return to === "bool" ? bytesOf(Int32Array.from(values)) : bytesOf(values);
}

/** GPU words of a bool tensor → one byte per element (torch's layout), into `out`. */
export function boolWordsToBytes(words: Uint8Array, out: Uint8Array): Uint8Array {
  const n = words.byteLength / WORD_BYTES;
  const view = new Int32Array(words.buffer, words.byteOffset, n);
  for (let i = 0; i < n; i++) out[i] = view[i] !== 0 ? 1 : 0;
  return out.subarray(0, n);
}
