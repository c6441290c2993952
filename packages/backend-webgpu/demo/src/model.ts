// The demo's training job, shared by the page and the Node side of its test: a small tfjs-layers
// classifier with seeded initial weights, trained on batches that are a pure function of the step,
// so two runs (or a run and its resumption) can be compared bit for bit.
import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";

/** A 4 → 16 → 3 classifier with fixed initial weights. */
export function buildModel(): tfl.Sequential {
  return tfl.sequential({
    layers: [
      tfl.layers.dense({ units: 16, inputShape: [4], activation: "relu", kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }) }),
      tfl.layers.dense({ units: 3, kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }) }),
    ],
  });
}

export function buildOptimizer(): tf.Optimizer {
  return tf.train.adam(0.01, 0.9, 0.99);
}

/** The batch of step `step`. */
function batch(step: number): { x: tf.Tensor2D; y: tf.Tensor2D } {
  const x: number[][] = [];
  const y: number[][] = [];
  for (let i = 0; i < 8; i++) {
    const a = Math.sin(step * 13 + i * 7);
    const b = Math.cos(step * 5 + i * 3);
    x.push([a, b, a * b, a - b]);
    const cls = a + b > 0.5 ? 0 : a - b > 0 ? 1 : 2;
    y.push([0, 1, 2].map((c) => (c === cls ? 1 : 0)));
  }
  return { x: tf.tensor2d(x), y: tf.tensor2d(y) };
}

/** One optimizer step on the batch of `step`; returns the loss. */
export async function trainStep(model: tfl.Sequential, optimizer: tf.Optimizer, step: number): Promise<number> {
  const { x, y } = batch(step);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const loss = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x) as tf.Tensor) as tf.Scalar, true, vars)!;
  const value = (await loss.data())[0]!;
  tf.dispose([x, y, loss]);
  return value;
}

/** Every weight of the model as raw float32 bit patterns, in model order. */
export async function weightBits(model: tfl.Sequential): Promise<number[][]> {
  return Promise.all(model.weights.map(async (w) => Array.from(new Uint32Array(((await w.read().data()) as Float32Array).slice().buffer))));
}
