import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import * as tfl from "@tensorflow/tfjs-layers";
import { afterAll, describe, expect, it } from "vitest";
import { cpuBackend, Fabric, NodeFileIO } from "@savepoint/core";
import { webgpuBackend } from "../src/index.js";
import { nodeWebGpuOrSkip } from "./helpers/node-webgpu.js";
import { bits, gpuSide, onGpu, trickyFloats, trickyInts } from "./helpers/tensors.js";

const gpu = await nodeWebGpuOrSkip();
const dir = mkdtempSync(join(tmpdir(), "savepoint-webgpu-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const gpuFabric = () => new Fabric({ backend: webgpuBackend(), io: new NodeFileIO(), chunkBytes: 4096 });
const cpuFabric = () => new Fabric({ backend: cpuBackend(), io: new NodeFileIO() });

/** A sole-owner variable holding exactly `data`'s bits, on the active backend. */
function variableOf(data: Float32Array | Int32Array, shape: number[]): tf.Variable {
  const init = tf.tensor(data, shape, data instanceof Int32Array ? "int32" : "float32");
  const v = tf.variable(init);
  init.dispose();
  return v;
}

describe.runIf(gpu)("WebGPU ⇄ CPU checkpoints, bit for bit", () => {
  it("saves from WebGPU, loads into CPU, and back (float32 and int32)", async () => {
    const f1 = trickyFloats(3001);
    const i1 = trickyInts(1999);
    await tf.setBackend("webgpu");
    const onGpuState = { w: onGpu(variableOf(f1, [3001])), n: onGpu(variableOf(i1, [1999])), step: 7 };
    expect(gpuSide().tensorMap.has(onGpuState.w.dataId)).toBe(true);
    await gpuFabric().save(join(dir, "from-gpu.ckpt"), onGpuState);

    await tf.setBackend("cpu");
    const onCpu = { w: variableOf(new Float32Array(3001), [3001]), n: variableOf(new Int32Array(1999), [1999]), step: 0 };
    await cpuFabric().load(join(dir, "from-gpu.ckpt"), onCpu);
    expect(bits(onCpu.w.dataSync() as Float32Array)).toEqual(bits(f1));
    expect(Array.from(onCpu.n.dataSync())).toEqual(Array.from(i1));
    expect(onCpu.step).toBe(7);

    const f2 = trickyFloats(3001).reverse();
    const i2 = trickyInts(1999).reverse();
    onCpu.w.assign(tf.tensor(f2, [3001]));
    onCpu.n.assign(tf.tensor(i2, [1999], "int32"));
    await cpuFabric().save(join(dir, "from-cpu.ckpt"), { ...onCpu, step: 8 });

    await tf.setBackend("webgpu");
    const back = { w: onGpu(variableOf(new Float32Array(3001), [3001])), n: onGpu(variableOf(new Int32Array(1999), [1999])), step: 0 };
    await gpuFabric().load(join(dir, "from-cpu.ckpt"), back);
    expect(gpuSide().tensorMap.has(back.w.dataId)).toBe(true);
    expect(bits((await back.w.data()) as Float32Array)).toEqual(bits(f2));
    expect(Array.from(await back.n.data())).toEqual(Array.from(i2));
    expect(back.step).toBe(8);
    tf.dispose([onGpuState.w, onGpuState.n, onCpu.w, onCpu.n, back.w, back.n]);
  });

  it("resumes tfjs-layers training on WebGPU bit-identically (model and Adam state)", async () => {
    await tf.setBackend("webgpu");
    const build = () =>
      tfl.sequential({
        layers: [
          tfl.layers.dense({ units: 16, inputShape: [4], activation: "relu", kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }) }),
          tfl.layers.dense({ units: 3, kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }) }),
        ],
      });
    const train = (model: tfl.Sequential, opt: tf.Optimizer, from: number, to: number) => {
      for (let s = from; s < to; s++) {
        const x = tf.tensor2d(Array.from({ length: 32 }, (_, k) => Math.sin(s * 13 + k)), [8, 4]);
        const y = tf.oneHot(tf.tensor1d(Array.from({ length: 8 }, (_, k) => (s + k) % 3), "int32"), 3);
        const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
        opt.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x) as tf.Tensor) as tf.Scalar, false, vars);
        tf.dispose([x, y]);
      }
    };
    const weightBits = async (model: tfl.Sequential) => Promise.all(model.weights.map(async (w) => bits((await w.read().data()) as Float32Array)));

    const model = build();
    const opt = tf.train.adam(0.01);
    train(model, opt, 0, 3);
    await gpuFabric().save(join(dir, "train.ckpt"), { model, optimizer: opt, step: 3 });
    train(model, opt, 3, 6);
    const uninterrupted = await weightBits(model);

    const resumed = build();
    const opt2 = tf.train.adam(0.01);
    const state = { model: resumed, optimizer: opt2, step: 0 };
    await gpuFabric().load(join(dir, "train.ckpt"), state);
    expect(state.step).toBe(3);
    train(resumed, opt2, 3, 6);
    expect(await weightBits(resumed)).toEqual(uninterrupted);
  });
});
