import * as tf from "@tensorflow/tfjs-core";

/** tfjs-backend-webgpu's bookkeeping for one tensor, read as a back door by the tests. */
export interface GpuSideData {
  values?: unknown;
  resource?: unknown;
  refCount: number;
}

export interface GpuSide {
  tensorMap: { get(id: object): GpuSideData; has(id: object): boolean };
  bufferManager: { getNumUsedBuffers(): number };
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  device: { queue: { onSubmittedWorkDone(): Promise<void> } };
}

export function gpuSide(): GpuSide {
  return tf.findBackend("webgpu") as unknown as GpuSide;
}

/** GPU buffers tfjs's pool has handed out, counted once tfjs's queued work (and its frees) is submitted. */
export function usedBuffers(): number {
  const b = gpuSide();
  b.ensureCommandEncoderReady();
  b.endComputePassEncoder();
  b.submitQueue();
  return b.bufferManager.getNumUsedBuffers();
}

/** Waits until the GPU has finished all work tfjs queued (so a timing measures only what follows). */
export async function settleGpu(): Promise<void> {
  usedBuffers();
  await gpuSide().device.queue.onSubmittedWorkDone();
}

/** `t`, moved into a GPU buffer (tfjs uploads lazily, on first use by a kernel). */
export function onGpu<T extends tf.Tensor>(t: T): T {
  tf.tidy(() => tf.add(t, tf.zerosLike(t))).dispose();
  return t;
}

/** A variable that alone owns its GPU buffer (the initial value is disposed, as tfjs-layers does). */
export function soleVariable(values: tf.TensorLike, shape: number[], dtype: "float32" | "int32" | "bool" = "float32"): tf.Variable {
  const init = tf.tensor(values, shape, dtype);
  const v = tf.variable(init, true, undefined, dtype);
  init.dispose();
  return onGpu(v);
}

/** Raw 32-bit patterns of float32/int32 data, for bit-for-bit comparison (NaN payloads included). */
export function bits(data: ArrayLike<number> | Float32Array | Int32Array): number[] {
  const arr = data instanceof Float32Array || data instanceof Int32Array ? data : Float32Array.from(data);
  return Array.from(new Uint32Array(arr.buffer, arr.byteOffset, arr.length));
}

/** float32 values that catch lossy paths: NaN payloads, -0, denormals, infinities, extremes. */
export function trickyFloats(n: number): Float32Array {
  const out = new Float32Array(n);
  const u = new Uint32Array(out.buffer);
  const specials = [0x7fc00001, 0xffc12345, 0x80000000, 0x00000001, 0x807fffff, 0x7f800000, 0xff800000, 0x7f7fffff, 0x3eaaaaab];
  for (let i = 0; i < n; i++) u[i] = i < specials.length ? specials[i]! : (Math.imul(i, 2654435761) ^ (i >>> 3)) >>> 0 & 0xbf7fffff;
  return out;
}

export function trickyInts(n: number): Int32Array {
  const out = new Int32Array(n);
  const specials = [-2147483648, 2147483647, -1, 0, 1];
  for (let i = 0; i < n; i++) out[i] = i < specials.length ? specials[i]! : Math.imul(i, 2654435761);
  return out;
}
