// Builds the benchmark's training state in tfjs: a tfjs-layers model and an Adam optimizer whose
// slots make up the rest. At scale 1 (1 GiB): 48 kernels of 16 MiB, 2,000 small tensors (1,000
// dense layers of 64 units: kernel 16 KiB + bias 256 B), and Adam's nested state dict
// ({ state: { i: { step, exp_avg, exp_avg_sq } }, param_groups }) over the small layers and 7 big
// kernels. Every tensor holds non-zero values, so its memory is resident.
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import * as tfl from "@tensorflow/tfjs-layers";

export { tf, tfl };

const BIG = 2048; // a [2048, 2048] float32 kernel is 16 MiB
const SMALL = 64;

/** Counts of each kind of tensor at a scale (1 = 1 GiB); `optimizer: false` drops the optimizer. */
export function layout(scale) {
  return {
    big: Math.max(1, Math.round(48 * scale)),
    small: Math.max(1, Math.round(1000 * scale)),
    // 7 big kernels + the small layers get Adam slots: about a quarter of the state.
    optBig: Math.max(0, Math.round(7.15 * scale)),
  };
}

export async function initTf() {
  await tf.setBackend("cpu");
  await tf.ready();
}

/** Fills a Float32Array with cheap, deterministic, non-zero values. */
function fill(n, seed) {
  const a = new Float32Array(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    a[i] = (x & 0xffffff) / 0x1000000 - 0.5;
  }
  return a;
}

function fillVariable(v, seed) {
  const t = tf.tensor(fill(v.size, seed), v.shape, "float32");
  v.assign(t);
  t.dispose();
}

/**
 * Builds `{ model, optimizer, step }`; `seed` varies the values (a second state to load into).
 * With `optimizer: false`, `{ model, step }` only (sizes as in `layout`); with `optimizerAll`,
 * Adam has slots for every weight (its state is twice the model).
 */
export function buildState(scale, { seed = 1, optimizer = true, optimizerAll = false } = {}) {
  const L = layout(scale);
  const M = L;
  const layers = [];
  for (let i = 0; i < M.small; i++) layers.push(tfl.layers.dense({ units: SMALL, inputShape: i === 0 ? [SMALL] : undefined, kernelInitializer: "zeros", biasInitializer: "zeros" }));
  layers.push(tfl.layers.dense({ units: BIG, useBias: false, kernelInitializer: "zeros" }));
  for (let i = 0; i < M.big; i++) layers.push(tfl.layers.dense({ units: BIG, useBias: false, kernelInitializer: "zeros" }));
  const model = tfl.sequential({ layers });
  let s = seed * 100003;
  for (const w of model.weights) fillVariable(w.read(), s++);
  const state = { model, step: 7 };
  if (optimizer) {
    const opt = tf.train.adam(1e-3);
    const weights = model.trainableWeights;
    // Slots for the small layers and the last optBig kernels.
    // optimizerAll: slots for every weight, so the optimizer state is twice the model.
    const chosen = optimizerAll ? weights : [...weights.slice(0, 2 * M.small), ...(L.optBig > 0 ? weights.slice(-L.optBig) : [])];
    // Adam creates its slots on the first update; make them directly (same names, as tfjs does),
    // with values, instead of running an update over a GiB of zeros.
    // Inside tidy, as tfjs's own optimizers make them: the variable is the only owner of its storage.
    const slot = (w, suffix) => ({ originalName: `${w.read().name}/${suffix}`, variable: tf.tidy(() => tf.variable(tf.tensor(fill(w.read().size, s++), w.read().shape, "float32"), false)) });
    opt.accumulatedFirstMoment = chosen.map((w) => slot(w, "m"));
    opt.accumulatedSecondMoment = chosen.map((w) => slot(w, "v"));
    opt.iterations_ = 7;
    state.optimizer = opt;
  }
  return state;
}

/** Bytes of tensor data in a state built by buildState. */
export function stateBytes(state) {
  let n = 0;
  for (const w of state.model.weights) n += w.read().size * 4;
  if (state.optimizer) for (const slot of [...state.optimizer.accumulatedFirstMoment, ...state.optimizer.accumulatedSecondMoment]) if (slot) n += slot.variable.size * 4;
  return n;
}

/** A cheap fingerprint of a state's model weights (sum of a sample of values), to check loads. */
export function fingerprint(state) {
  let sum = 0;
  for (const w of state.model.weights) {
    const d = w.read().dataSync();
    for (let i = 0; i < d.length; i += 4093) sum += d[i];
  }
  return sum;
}
