/**
 * `@savepoint/backend-webgpu/node`: real WebGPU for TensorFlow.js in Node, through Dawn (the
 * optional `webgpu` package), with adapters that work on machines without a GPU.
 *
 * @packageDocumentation
 */
export { setupNodeWebGpu, type NodeWebGpuOptions, type NodeWebGpu, type DawnGpu } from "./node/setup-node-webgpu.js";
export { type NodeAdapterChoice, DEFAULT_SWIFTSHADER_ICD } from "./node/adapter-choices.js";
