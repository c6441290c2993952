import { CorruptCheckpointError, itemSize, numel, type TensorSource } from "@savepoint/core";
import { alignedChunks } from "../tensor/aligned-chunks.js";
import { toGpuWords, WORD_BYTES, type WordDType } from "../tensor/gpu-words.js";
import type { WebGpuBackendInternals } from "../tfjs/webgpu-internals.js";
import { BufferUsage, type GpuBuffer } from "./gpu-types.js";

/** The usage tfjs-backend-webgpu gives tensor buffers, so ours can become a tensor's storage. */
export const TENSOR_USAGE = BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST;

/**
 * Streams `source` into a new GPU buffer laid out as tfjs-webgpu stores a `to` tensor, one chunk
 * of host memory at a time. Queue writes are staged by the WebGPU implementation until the GPU
 * consumes them, so every two chunks we wait for the queue: host memory stays bounded instead of
 * growing to the tensor's size.
 *
 * The buffer comes from tfjs's pool and belongs to the caller. Nothing else sees it until the
 * caller installs it, so a failure halfway (bad CRC, an int64 that does not fit) leaves the target
 * tensor untouched.
 */
export async function uploadSource(backend: WebGpuBackendInternals, source: TensorSource, to: WordDType, key: string, chunkBytes: number): Promise<GpuBuffer> {
  const size = numel(source.shape) * WORD_BYTES;
  const { bufferManager, device } = backend;
  const buffer = bufferManager.acquireBuffer(size, TENSOR_USAGE);
  try {
    let offset = 0;
    let unwaited = 0;
    for await (const chunk of alignedChunks(source.chunks(chunkBytes), itemSize(source.dtype), key)) {
      const words = await toGpuWords(chunk, source.dtype, to, key);
      if (offset + words.byteLength > size) throw tooLong(key, size);
      device.queue.writeBuffer(buffer, offset, words);
      offset += words.byteLength;
      unwaited += words.byteLength;
      if (unwaited >= 2 * chunkBytes) {
        await device.queue.onSubmittedWorkDone();
        unwaited = 0;
      }
    }
    if (offset !== size) throw new CorruptCheckpointError(`${key}: the checkpoint holds ${offset / WORD_BYTES} elements for a tensor of ${size / WORD_BYTES}; the file is truncated or damaged.`, { subject: key });
    return buffer;
  } catch (err) {
    bufferManager.releaseBuffer(buffer);
    throw err;
  }
}

function tooLong(key: string, size: number): CorruptCheckpointError {
  return new CorruptCheckpointError(`${key}: the checkpoint holds more than the ${size / WORD_BYTES} elements its shape declares; the file is damaged.`, { subject: key });
}
