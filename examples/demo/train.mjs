// The training job the demo and the resume tests share: a small tfjs-layers model on the CPU
// backend, trained on deterministic data so two runs can be compared bit for bit.
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import * as tfl from "@tensorflow/tfjs-layers";

export async function useCpu() {
  // Quiets tfjs's one-time "install tfjs-node" banner, which would bury the demo's output.
  tf.env().set("PROD", true);
  await tf.setBackend("cpu");
  await tf.ready();
}

/** A 4 → 16 → 3 classifier with fixed initial weights. */
export function buildModel() {
  const model = tfl.sequential({
    layers: [
      tfl.layers.dense({ units: 16, inputShape: [4], activation: "relu", kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }) }),
      tfl.layers.dense({ units: 3, kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }) }),
    ],
  });
  return model;
}

/** Every built-in tfjs optimizer, by name. */
export function makeOptimizer(kind) {
  switch (kind) {
    case "sgd": return tf.train.sgd(0.1);
    case "momentum": return tf.train.momentum(0.05, 0.9);
    case "adam": return tf.train.adam(0.01, 0.9, 0.99);
    case "adamax": return tf.train.adamax(0.01);
    case "adagrad": return tf.train.adagrad(0.1);
    case "adadelta": return tf.train.adadelta(1.0);
    case "rmsprop": return tf.train.rmsprop(0.01, 0.9, 0.5, 1e-7, true);
    default: throw new Error(`unknown optimizer ${kind}`);
  }
}

/** The batch of step `step`: a deterministic function of the step number. */
function batch(step) {
  const x = [];
  const y = [];
  for (let i = 0; i < 8; i++) {
    const a = Math.sin(step * 13 + i * 7);
    const b = Math.cos(step * 5 + i * 3);
    x.push([a, b, a * b, a - b]);
    const cls = a + b > 0.5 ? 0 : a - b > 0 ? 1 : 2;
    y.push([0, 1, 2].map((c) => (c === cls ? 1 : 0)));
  }
  return { x: tf.tensor2d(x), y: tf.tensor2d(y) };
}

/** Trains steps [from, to) with `optimizer`; returns the last loss. */
export function train(model, optimizer, from, to) {
  let last = NaN;
  const vars = model.trainableWeights.map((w) => w.read());
  for (let step = from; step < to; step++) {
    const { x, y } = batch(step);
    const loss = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x)), true, vars);
    last = loss.dataSync()[0];
    tf.dispose([x, y, loss]);
  }
  return last;
}

/** Every weight of the model and every optimizer variable, as raw float bits, for comparison. */
export async function fingerprint(model, optimizer) {
  const out = {};
  for (const w of model.weights) out[`model:${w.originalName.replace(/_[A-Za-z]+\d+\//, "/")}:${w.shape}`] = Array.from(new Uint32Array(new Float32Array(w.read().dataSync()).buffer));
  const slots = Object.entries(optimizer)
    .filter(([, v]) => Array.isArray(v) && v.every((s) => s && s.variable))
    .flatMap(([field, list]) => list.map((s, i) => [`opt:${field}:${i}`, Array.from(new Uint32Array(new Float32Array(s.variable.dataSync()).buffer))]));
  for (const [k, v] of slots) out[k] = v;
  for (const name of ["accBeta1", "accBeta2", "iteration"]) if (optimizer[name]) out[`opt:${name}`] = Array.from(new Uint32Array(new Float32Array(optimizer[name].dataSync()).buffer));
  out["opt:iterations"] = [optimizer.iterations];
  return out;
}
