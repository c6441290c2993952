/**
 * @savepoint/backend-cuda: tensors in CUDA device memory for savepoint, through a Node-API addon
 * that streams checkpoints between the GPU and disk via pinned staging buffers.
 *
 * Importing this module registers the backend as `"cuda"` (`new Fabric({ backend: "cuda" })`).
 * The addon is loaded on first use, never at import: the package imports everywhere, and
 * {@link isAvailable} / {@link unavailableReason} say whether CUDA can be used here.
 *
 * @packageDocumentation
 */
import { registerBackend } from "@savepoint/core";
import { cudaBackend } from "./cuda-backend.js";

export { CudaBackend, cudaBackend, type CudaBackendOptions } from "./cuda-backend.js";
export { CudaTensor, isCudaTensor, type CudaTensorOptions } from "./tensor/cuda-tensor.js";
export { isAvailable, unavailableReason, cudaStatus, deviceInfo, type CudaStatus } from "./availability.js";
export { CudaError, CudaUnavailableError } from "./errors.js";
export type { StagingOptions } from "./device/device-context.js";
export type { CudaProbe, CudaDeviceInfo } from "./native/cuda-native.js";

registerBackend("cuda", () => cudaBackend());
