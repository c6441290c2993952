import { BufferUsage, MapMode, type GpuBuffer } from "./gpu-types.js";
import { flushPendingKernels, type WebGpuBackendInternals } from "../tfjs/webgpu-internals.js";

const STAGING_USAGE = BufferUsage.MAP_READ | BufferUsage.COPY_DST;

/**
 * Streams bytes `[0, size)` of a GPU buffer to the host in chunks of at most `chunkBytes`
 * (rounded down to a multiple of 4, the copy granularity), through two mappable staging buffers:
 * while the caller consumes chunk k, the copy and map of chunk k+1 are already in flight, so the
 * GPU and the writer overlap and host memory never holds more than two chunks.
 *
 * Each yielded array is a view of a mapped staging buffer, valid until the next chunk is pulled
 * (the `TensorSource` contract): no host copy is made.
 */
export async function* readBuffer(backend: WebGpuBackendInternals, source: GpuBuffer, size: number, chunkBytes: number): AsyncGenerator<Uint8Array> {
  if (size === 0) return;
  if (size % 4 !== 0) throw new RangeError(`GPU read-back needs a multiple of 4 bytes, got ${size}`);
  const step = Math.max(4, Math.floor(chunkBytes / 4) * 4);
  const count = Math.ceil(size / step);
  const stagingSize = Math.min(step, size);
  const { device, bufferManager } = backend;
  // Pooled by tfjs's buffer manager: a save of many tensors reuses the same two staging buffers.
  const staging = [bufferManager.acquireBuffer(stagingSize, STAGING_USAGE)];
  if (count > 1) staging.push(bufferManager.acquireBuffer(stagingSize, STAGING_USAGE));
  const maps: Array<Promise<void> | null> = [null, null];
  const mapped = [false, false];
  const issue = (k: number): void => {
    const buf = staging[k % 2]!;
    const n = Math.min(step, size - k * step);
    const encoder = device.createCommandEncoder();
    encoder.copyBufferToBuffer(source, k * step, buf, 0, n);
    device.queue.submit([encoder.finish()]);
    const map = buf.mapAsync(MapMode.READ, 0, n);
    // Never an unhandled rejection: it is awaited below or in finally.
    map.catch(() => {});
    maps[k % 2] = map;
  };
  flushPendingKernels(backend);
  try {
    issue(0);
    for (let k = 0; k < count; k++) {
      if (k + 1 < count) issue(k + 1);
      await maps[k % 2];
      maps[k % 2] = null;
      mapped[k % 2] = true;
      const buf = staging[k % 2]!;
      yield new Uint8Array(buf.getMappedRange(0, Math.min(step, size - k * step)));
      buf.unmap();
      mapped[k % 2] = false;
    }
  } finally {
    for (let i = 0; i < staging.length; i++) {
      const buf = staging[i]!;
      // The consumer stopped early or a copy failed: settle and unmap, so the pool gets it back idle.
      const pending = maps[i];
      if (pending) mapped[i] = await pending.then(() => true, () => false);
      if (mapped[i]) buf.unmap();
      bufferManager.releaseBuffer(buf);
    }
  }
}
