/**
 * `@savepoint/backend-webgpu`: checkpoints of TensorFlow.js models trained on WebGPU. The backend
 * reads GPU buffers back in bounded chunks and loads into existing variables in place; the browser
 * IO stores checkpoints in the Origin Private File System (or IndexedDB), atomically.
 * Node setup (Dawn) lives in `@savepoint/backend-webgpu/node`.
 *
 * @packageDocumentation
 */
export { WebGpuBackend, webgpuBackend, type WebGpuBackendOptions } from "./webgpu-backend.js";
export { OpfsIO, type OpfsIOOptions } from "./browser/opfs-io.js";
export { IndexedDbIO, type IndexedDbIOOptions } from "./browser/indexeddb-io.js";
export { browserCheckpointIO } from "./browser/browser-io.js";
