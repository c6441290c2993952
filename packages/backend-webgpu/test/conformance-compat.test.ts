import * as tf from "@tensorflow/tfjs-core";
import { describe } from "vitest";
import { runBackendConformance } from "@savepoint/core/testing";
import type { DType } from "@savepoint/core";
import { webgpuBackend } from "../src/index.js";
import { nodeWebGpuOrSkip } from "./helpers/node-webgpu.js";
import { onGpu } from "./helpers/tensors.js";

// The same contract on the other adapter a GPU-less machine offers: Mesa's llvmpipe through
// OpenGL ES, where Dawn runs WebGPU in compatibility mode (vitest runs each file in its own process).
const gpu = await nodeWebGpuOrSkip("llvmpipe");

describe.runIf(gpu)(`WebGPU compatibility mode (${gpu?.description})`, () => {
  const d = (t: DType) => t as "float32" | "int32" | "bool";
  runBackendConformance({
    name: "webgpu on llvmpipe",
    backend: () => webgpuBackend({ stagingBytes: 64 }),
    dtypes: ["float32", "int32", "bool"],
    tensor: (dtype, shape, values) => onGpu(tf.tensor(values, shape, d(dtype))),
    variable: (dtype, shape, values) => onGpu(tf.variable(tf.tensor(values, shape, d(dtype)), true, undefined, d(dtype))),
    values: async (t) => Array.from((await (t as tf.Tensor).data()) as ArrayLike<number>),
  });
});
