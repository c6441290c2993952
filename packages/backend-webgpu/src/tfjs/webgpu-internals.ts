import * as tf from "@tensorflow/tfjs-core";
import type { GpuBuffer, GpuDevice } from "../gpu/gpu-types.js";

/**
 * What one tensor's data looks like inside tfjs-backend-webgpu 4.x (`WebGPUBackend.tensorMap`):
 * either host values not yet uploaded, a GPU buffer, or both (after a read cached the values).
 */
export interface WebGpuTensorData {
  values?: ArrayLike<number> | null;
  dtype: string;
  shape: number[];
  refCount: number;
  resource?: unknown;
  external?: boolean;
  complexTensorInfos?: unknown;
}

/**
 * The members of tfjs-backend-webgpu's `WebGPUBackend` this package relies on. They are public in
 * its typings (except none); we type them here so the package needs the backend only at run time.
 */
export interface WebGpuBackendInternals {
  readonly device: GpuDevice;
  readonly tensorMap: { has(dataId: object): boolean; get(dataId: object): WebGpuTensorData };
  readonly bufferManager: {
    acquireBuffer(size: number, usage: number, mappedAtCreation?: boolean, reuse?: boolean): GpuBuffer;
    releaseBuffer(buffer: GpuBuffer, reuse?: boolean): void;
  };
  refCount(dataId: object): number;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  makeTensorInfo(shape: number[], dtype: string): { dataId: object; shape: number[]; dtype: string };
}

/** The registered tfjs `webgpu` backend, when it has been initialised (else null). */
export function findWebGpuBackend(): WebGpuBackendInternals | null {
  let backend: unknown;
  try {
    backend = tf.findBackend("webgpu");
  } catch {
    return null;
  }
  const b = backend as Partial<WebGpuBackendInternals> | null;
  return b && b.tensorMap && b.bufferManager && b.device && typeof b.submitQueue === "function" ? (b as WebGpuBackendInternals) : null;
}

/** The webgpu backend holding `tensor`'s data, or null when another backend holds it. */
export function webGpuHolderOf(tensor: tf.Tensor): WebGpuBackendInternals | null {
  const b = findWebGpuBackend();
  return b && b.tensorMap.has(tensor.dataId) ? b : null;
}

/**
 * Submits the kernels tfjs has recorded but not yet sent to the GPU, so that copies we submit
 * afterwards see their results (tfjs batches dispatches in its own command encoder).
 */
export function flushPendingKernels(backend: WebGpuBackendInternals): void {
  backend.ensureCommandEncoderReady();
  backend.endComputePassEncoder();
  backend.submitQueue();
}

/**
 * Holds a reference on `tensor`'s data for the duration of a streaming read, so that a dispose or
 * a `variable.assign` meanwhile cannot send its GPU buffer back to tfjs's pool to be overwritten.
 * Returns the release function. Uses no kernel, so the data does not move between backends.
 */
export function retainData(backend: WebGpuBackendInternals, tensor: tf.Tensor): () => void {
  const guard = tf.engine().makeTensorFromDataId(tensor.dataId, tensor.shape, tensor.dtype, backend as unknown as tf.KernelBackend);
  (backend as unknown as tf.KernelBackend).incRef(tensor.dataId);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    guard.dispose();
  };
}
