import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import * as tfl from "@tensorflow/tfjs-layers";

export { tf, tfl };

export async function useCpu(): Promise<void> {
  await tf.setBackend("cpu");
  await tf.ready();
}

/** A small MLP; `seed` fixes its initial weights. */
export function mlp(seed = 1, options: { useBias?: boolean; units?: number } = {}): tfl.Sequential {
  return tfl.sequential({
    layers: [
      tfl.layers.dense({ units: options.units ?? 6, inputShape: [4], activation: "relu", useBias: options.useBias ?? true, kernelInitializer: tfl.initializers.glorotUniform({ seed }), biasInitializer: tfl.initializers.randomNormal({ seed: seed + 100 }) }),
      tfl.layers.dense({ units: 2, useBias: options.useBias ?? true, kernelInitializer: tfl.initializers.glorotUniform({ seed: seed + 1 }), biasInitializer: tfl.initializers.randomNormal({ seed: seed + 200 }) }),
    ],
  });
}

/** One deterministic training step. */
export function step(model: tfl.LayersModel, optimizer: tf.Optimizer, i: number): void {
  const x = tf.tensor2d(Array.from({ length: 16 }, (_, k) => Math.sin(i * 3 + k)), [4, 4]);
  const y = tf.tensor2d(Array.from({ length: 8 }, (_, k) => Math.cos(i + k)), [4, 2]);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  optimizer.minimize(() => tf.losses.meanSquaredError(y, model.apply(x) as tf.Tensor) as tf.Scalar, false, vars);
  tf.dispose([x, y]);
}

/** Raw bits of every weight of a model, keyed by position. */
export function weightBits(model: tfl.LayersModel): number[][] {
  return model.weights.map((w) => Array.from(new Uint32Array(new Float32Array(w.read().dataSync() as Float32Array).buffer)));
}
