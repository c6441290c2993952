import * as tf from "@tensorflow/tfjs-core";
import type { GpuBuffer } from "../gpu/gpu-types.js";
import type { WebGpuBackendInternals } from "./webgpu-internals.js";

/**
 * A new tfjs tensor whose storage is `buffer` (from tfjs's pool, with tensor usage). tfjs owns it
 * from here on and returns it to its pool when the tensor is disposed: no copy, unlike
 * `tf.tensor({ buffer })`, which copies unless told `zeroCopy` (and then never frees it).
 */
export function tensorFromBuffer(backend: WebGpuBackendInternals, buffer: GpuBuffer, shape: number[], dtype: "float32" | "int32" | "bool"): tf.Tensor {
  const info = backend.makeTensorInfo(shape, dtype);
  const data = backend.tensorMap.get(info.dataId);
  data.values = null;
  data.resource = buffer;
  return tf.engine().makeTensorFromTensorInfo(info as tf.TensorInfo, backend as unknown as tf.KernelBackend);
}
