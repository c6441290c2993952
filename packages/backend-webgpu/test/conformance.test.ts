import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";
import { runBackendConformance } from "@savepoint/core/testing";
import type { DType } from "@savepoint/core";
import { webgpuBackend } from "../src/index.js";
import { nodeWebGpuOrSkip } from "./helpers/node-webgpu.js";
import { onGpu } from "./helpers/tensors.js";

const gpu = await nodeWebGpuOrSkip();

describe.runIf(gpu)(`WebGPU in Node (${gpu?.adapter}: ${gpu?.description})`, () => {
  it("is tfjs's active backend", () => {
    expect(tf.getBackend()).toBe("webgpu");
  });

  // The suite's tensors are moved into GPU buffers first (`tf.tensor` uploads lazily, on first use).
  const tfDType = (d: DType) => d as "float32" | "int32" | "bool";
  runBackendConformance({
    name: "webgpu",
    backend: () => webgpuBackend(),
    dtypes: ["float32", "int32", "bool"],
    tensor: (dtype, shape, values) => onGpu(tf.tensor(values, shape, tfDType(dtype))),
    variable: (dtype, shape, values) => onGpu(tf.variable(tf.tensor(values, shape, tfDType(dtype)), true, undefined, tfDType(dtype))),
    values: async (t) => Array.from((await (t as tf.Tensor).data()) as ArrayLike<number>),
  });
});
