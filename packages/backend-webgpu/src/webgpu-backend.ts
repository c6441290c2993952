import * as tf from "@tensorflow/tfjs-core";
import {
  bytesOf,
  checkShape,
  DEFAULT_CHUNK_BYTES,
  dtypeOfTfjs,
  InvalidArgumentError,
  isTfjsTensor,
  isTfjsVariable,
  itemSize,
  numel,
  TfjsBackend,
  tfjsDTypeFor,
  type Backend,
  type DType,
  type TensorSource,
} from "@savepoint/core";
import { BufferUsage, isGpuBuffer } from "./gpu/gpu-types.js";
import { readBuffer } from "./gpu/read-buffer.js";
import { uploadSource } from "./gpu/upload-source.js";
import { boolWordsToBytes, WORD_BYTES, type WordDType } from "./tensor/gpu-words.js";
import { complexFromSource } from "./tfjs/complex.js";
import { tensorFromBuffer } from "./tfjs/tensor-from-buffer.js";
import { findWebGpuBackend, flushPendingKernels, retainData, webGpuHolderOf, type WebGpuBackendInternals } from "./tfjs/webgpu-internals.js";

/** Core's marker for tensor sources (a `Symbol.for` key, so it is shared across installed copies). */
const TENSOR_SOURCE = Symbol.for("savepoint.TensorSource");

/** Tensors up to this size are created from host values (see `create`). */
const SMALL_TENSOR_BYTES = 64 * 1024;

/** Options of {@link webgpuBackend}. */
export interface WebGpuBackendOptions {
  /**
   * Upper bound on each of the two read-back staging buffers and on each upload chunk, in bytes.
   * The chunk size Fabric asks for (`chunkBytes`, 8 MiB by default) applies below it.
   * @default 8 MiB
   */
  stagingBytes?: number;
}

/**
 * Tensors of TensorFlow.js's `webgpu` backend. Saving copies each tensor's GPU buffer to the host
 * in bounded chunks through two mappable staging buffers (the next copy runs while the current
 * chunk is written), never through tfjs's `data()`, which would keep a host copy of every tensor
 * cached. Loading streams checkpoint bytes into a scratch GPU buffer and, once all of it arrived
 * intact, copies it into the variable's own buffer: the variable keeps its buffer, and a damaged
 * file leaves it untouched.
 *
 * Tensors held by another tfjs backend (e.g. `cpu`) are handled as core's CPU backend does.
 */
export class WebGpuBackend implements Backend {
  readonly name = "webgpu";
  readonly #generic = new TfjsBackend("webgpu");
  readonly #stagingBytes: number;

  constructor(options: WebGpuBackendOptions = {}) {
    const staging = options.stagingBytes ?? DEFAULT_CHUNK_BYTES;
    if (!Number.isSafeInteger(staging) || staging < WORD_BYTES) throw new InvalidArgumentError(`stagingBytes must be an integer of at least ${WORD_BYTES}, got ${String(options.stagingBytes)}.`);
    this.#stagingBytes = staging;
  }

  isTensor(value: unknown): boolean {
    return isTfjsTensor(value);
  }

  isAssignable(value: unknown): boolean {
    return isTfjsVariable(value);
  }

  describe(tensor: unknown): { dtype: DType; shape: readonly number[] } {
    return this.#generic.describe(tensor);
  }

  toSource(tensor: unknown): TensorSource {
    const t = this.#tensor(tensor);
    const dtype = dtypeOfTfjs(t.dtype, "tensor");
    return {
      [TENSOR_SOURCE]: true,
      dtype,
      shape: t.shape,
      byteLength: numel(t.shape) * itemSize(dtype),
      chunks: (chunkBytes: number = DEFAULT_CHUNK_BYTES) => this.#chunks(t, dtype, chunkBytes),
    } as TensorSource;
  }

  async assign(target: unknown, source: TensorSource, key: string): Promise<void> {
    if (!isTfjsVariable(target)) throw new InvalidArgumentError(`${key} is not a tf.Variable; only variables can be loaded in place.`, { subject: key });
    checkShape(target.shape, source.shape, key);
    const backend = this.#activeHolder(target);
    if (!backend) return this.#generic.assign(target, source, key);
    if (target.dtype === "complex64") return replaceWith(target, await complexFromSource(source, key));
    if (numel(target.shape) === 0) return;
    const scratch = await uploadSource(backend, source, target.dtype as WordDType, key, this.#chunk());
    // Looked up again: the awaits above let training code run, which may have reassigned the variable.
    const data = backend.tensorMap.has(target.dataId) ? backend.tensorMap.get(target.dataId) : null;
    const resource = data?.resource;
    if (data && isGpuBuffer(resource) && (resource.usage & BufferUsage.COPY_DST) !== 0 && backend.refCount(target.dataId) === 1) {
      // Sole owner of its buffer: overwrite it in place, after the kernels tfjs has queued on it.
      flushPendingKernels(backend);
      const encoder = backend.device.createCommandEncoder();
      encoder.copyBufferToBuffer(scratch, 0, resource, 0, numel(target.shape) * WORD_BYTES);
      backend.device.queue.submit([encoder.finish()]);
      data.values = null; // a host copy cached by an earlier data() would now be stale
      backend.bufferManager.releaseBuffer(scratch);
      return;
    }
    // The data is shared with another tensor (tfjs tensors are immutable) or not in a buffer we
    // can write: give the variable the scratch buffer as new data instead, as `assign` would.
    replaceWith(target, tensorFromBuffer(backend, scratch, target.shape, target.dtype as WordDType));
  }

  async create(source: TensorSource, key: string): Promise<tf.Tensor> {
    const dtype = tfjsDTypeFor(source.dtype);
    const backend = tf.getBackend() === "webgpu" ? findWebGpuBackend() : null;
    if (dtype === "complex64" && backend) return complexFromSource(source, key);
    // Small tensors (scalars such as an optimizer's step) take tfjs's own path: host values that
    // tfjs uploads on first use. One queue write each would cost more than it saves, and callers
    // may read them back with dataSync(), which on WebGPU needs host values (or an OffscreenCanvas).
    if (!backend || dtype === "complex64" || source.byteLength <= SMALL_TENSOR_BYTES) return this.#generic.create(source, key) as Promise<tf.Tensor>;
    const buffer = await uploadSource(backend, source, dtype, key, this.#chunk());
    return tensorFromBuffer(backend, buffer, [...source.shape], dtype);
  }

  async *#chunks(t: tf.Tensor, dtype: DType, chunkBytes: number): AsyncGenerator<Uint8Array> {
    if (t.isDisposed) throw new InvalidArgumentError(`a tensor in the state was disposed before the save finished; keep tensors alive until save() resolves.`);
    const backend = webGpuHolderOf(t);
    if (!backend) {
      yield* this.#generic.toSource(t).chunks(chunkBytes);
      return;
    }
    const data = backend.tensorMap.get(t.dataId);
    const resource = data.resource;
    if (dtype === "complex64" || data.values != null || !isGpuBuffer(resource)) {
      // Host values already cached by tfjs (no read needed), complex parts, or a texture: tfjs's own read.
      yield* pieces(bytesOf((await t.data()) as Float32Array | Int32Array | Uint8Array), chunkBytes);
      return;
    }
    const release = retainData(backend, t);
    try {
      const step = Math.min(chunkBytes, this.#stagingBytes);
      const size = numel(t.shape) * WORD_BYTES;
      if (dtype === "bool") {
        // 4 GPU bytes per element become 1: read 4x the chunk, convert into one reused host buffer.
        const out = new Uint8Array(Math.min(step, size / WORD_BYTES));
        for await (const words of readBuffer(backend, resource, size, step * WORD_BYTES)) yield* pieces(boolWordsToBytes(words, out), chunkBytes);
      } else {
        for await (const bytes of readBuffer(backend, resource, size, step)) yield* pieces(bytes, chunkBytes);
      }
    } finally {
      release();
    }
  }

  /** The webgpu backend, when it holds `t` and is the active one (what `Variable.assign` needs). */
  #activeHolder(t: tf.Tensor): WebGpuBackendInternals | null {
    return tf.getBackend() === "webgpu" ? webGpuHolderOf(t) : null;
  }

  #chunk(): number {
    return Math.max(WORD_BYTES, this.#stagingBytes);
  }

  #tensor(value: unknown): tf.Tensor {
    if (!isTfjsTensor(value)) throw new InvalidArgumentError(`expected a tfjs tensor, got ${typeof value}.`);
    return value;
  }
}

/** `target.assign(fresh)`, then drops `fresh` (the variable keeps its own reference). */
function replaceWith(target: tf.Variable, fresh: tf.Tensor): void {
  try {
    target.assign(fresh);
  } finally {
    fresh.dispose();
  }
}

/** Splits `bytes` into views of at most `chunkBytes` (only needed when callers ask for tiny chunks). */
function* pieces(bytes: Uint8Array, chunkBytes: number): Generator<Uint8Array> {
  for (let off = 0; off < bytes.byteLength; off += chunkBytes) yield bytes.subarray(off, Math.min(off + chunkBytes, bytes.byteLength));
}

/**
 * The WebGPU backend: tensors of `@tensorflow/tfjs-backend-webgpu`, saved from GPU buffers in
 * bounded chunks and loaded into existing variables in place.
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-webgpu";
 * await tf.setBackend("webgpu");
 * const fabric = new Fabric({ backend: webgpuBackend() });
 * ```
 */
export function webgpuBackend(options?: WebGpuBackendOptions): Backend {
  return new WebGpuBackend(options);
}
