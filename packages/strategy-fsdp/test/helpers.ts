// Shared by the FSDP tests: models, in-process rank groups, and the full state of a sharded run.
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import * as tfl from "@tensorflow/tfjs-layers";
import { createLocalGroup, Fabric, type CheckpointIO, type Collective } from "@savepoint/core";
import { FSDPStrategy, type ShardedModel, type StateDictType } from "../src/index.js";

export { tf, tfl };

export async function useCpu(): Promise<void> {
  tf.env().set("PROD", true);
  await tf.setBackend("cpu");
  await tf.ready();
}

/**
 * A PyTorch `nn.Linear` as a tfjs layer: weights named `weight` (out × in) and `bias`, so a model
 * of them has the state-dict keys and shapes of the torch model Lightning's fixtures were saved from.
 */
class TorchLinear extends tfl.layers.Layer {
  static readonly className = "TorchLinear";
  readonly #units: number;
  readonly #seed: number;
  #weight?: tfl.LayerVariable;
  #bias?: tfl.LayerVariable;

  constructor(units: number, name: string, seed: number, inputShape?: number[]) {
    super({ name, inputShape });
    this.#units = units;
    this.#seed = seed;
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    this.#weight = this.addWeight("weight", [this.#units, shape[shape.length - 1]!], "float32", tfl.initializers.glorotUniform({ seed: this.#seed }));
    this.#bias = this.addWeight("bias", [this.#units], "float32", tfl.initializers.randomNormal({ seed: this.#seed + 7, stddev: 0.1 }));
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0]! : inputs;
    return tf.add(tf.matMul(x, this.#weight!.read(), false, true), this.#bias!.read());
  }

  override computeOutputShape(inputShape: tfl.Shape): tfl.Shape {
    return [...inputShape.slice(0, -1), this.#units];
  }
}

/** The model of ../shared/fixtures/lightning-2.6: Linear(10,16) → ReLU → Linear(16,12) → tanh → Linear(12,3). */
export function lightningModel(seed = 1): tfl.Sequential {
  return tfl.sequential({
    layers: [
      new TorchLinear(16, "fc1", seed, [10]),
      tfl.layers.activation({ activation: "relu" }),
      new TorchLinear(12, "fc2", seed + 1),
      tfl.layers.activation({ activation: "tanh" }),
      new TorchLinear(3, "out", seed + 2),
    ],
  });
}

/** A small MLP whose dense layers have 6, 5 and 3 rows in their kernels (uneven splits). */
export function mlp(seed = 1): tfl.Sequential {
  return tfl.sequential({
    layers: [
      tfl.layers.dense({ units: 5, inputShape: [6], activation: "relu", kernelInitializer: tfl.initializers.glorotUniform({ seed }), biasInitializer: tfl.initializers.randomNormal({ seed: seed + 100 }) }),
      tfl.layers.dense({ units: 3, kernelInitializer: tfl.initializers.glorotUniform({ seed: seed + 1 }), biasInitializer: tfl.initializers.randomNormal({ seed: seed + 200 }) }),
    ],
  });
}

/** This rank's batch of step `step` (4 samples); `rank` selects the shard of the global batch. */
export function batch(step: number, rank: number, inputs = 6, classes = 3): { x: tf.Tensor2D; y: tf.Tensor2D } {
  const x: number[][] = [];
  const y: number[][] = [];
  for (let i = 0; i < 4; i++) {
    const k = rank * 4 + i;
    x.push(Array.from({ length: inputs }, (_, j) => Math.sin(step * 13 + k * 7 + j * 3)));
    const cls = (step + k) % classes;
    y.push(Array.from({ length: classes }, (_, c) => (c === cls ? 1 : 0)));
  }
  return { x: tf.tensor2d(x), y: tf.tensor2d(y) };
}

/** One rank of an in-process group: its strategy, fabric, sharded model and optimizer. */
export interface Rank {
  strategy: FSDPStrategy;
  fabric: Fabric;
  model: ShardedModel<tfl.LayersModel>;
  optimizer: tf.Optimizer;
}

const open: Collective[] = [];

/** `n` ranks in this process sharing `io`; each wraps a fresh `build()` model. */
export function ranks(n: number, io: CheckpointIO, build: () => tfl.LayersModel, stateDictType: StateDictType = "sharded", lr = 0.01): Rank[] {
  const group = createLocalGroup(n, { timeoutMs: 5000 });
  open.push(...group);
  return group.map((collective) => {
    const strategy = new FSDPStrategy({ collective, stateDictType });
    return { strategy, fabric: new Fabric({ strategy, io }), model: strategy.setupModule(build()), optimizer: tf.train.adam(lr, 0.9, 0.99) };
  });
}

export async function closeGroups(): Promise<void> {
  await Promise.all(open.splice(0).map((c) => c.close?.()));
}

/** Trains steps [from, to) on every rank, each on its own shard of the batch. */
export async function train(group: Rank[], from: number, to: number, inputs = 6, classes = 3): Promise<void> {
  for (let s = from; s < to; s++) {
    await Promise.all(
      group.map(async (r, rank) => {
        const { x, y } = batch(s, rank, inputs, classes);
        await r.model.step(r.optimizer, () => tf.losses.softmaxCrossEntropy(y, r.model.module.apply(x) as tf.Tensor) as tf.Scalar);
        tf.dispose([x, y]);
      }),
    );
  }
}

const bits = (a: ArrayLike<number>) => Buffer.from(new Float32Array(Array.from(a)).buffer).toString("hex");

type Slot = { originalName: string; variable: tf.Variable };

/**
 * The whole state of a sharded run as hex float bits: every weight, and every optimizer slot and
 * scalar, with each rank's rows put back together in rank order.
 */
export function fullState(group: Rank[]): Record<string, string> {
  const out: Record<string, string> = {};
  const first = group[0]!;
  for (const p of first.model.parameters) {
    out[`model:${p.key}`] = bits(group.flatMap((r) => Array.from(r.model.parameter(p.key)!.local.dataSync())));
  }
  const trainable = first.model.parameters.filter((p) => p.trainable);
  for (const field of ["accumulatedFirstMoment", "accumulatedSecondMoment"]) {
    trainable.forEach((p, i) => {
      const parts = group.map((r) => ((r.optimizer as unknown as Record<string, Slot[]>)[field] ?? [])[i]);
      if (parts.some((s) => !s)) return;
      out[`opt:${field}:${p.key}`] = bits(parts.flatMap((s) => Array.from(s!.variable.dataSync())));
    });
  }
  for (const r of group) {
    const o = r.optimizer as unknown as { iterations: number; accBeta1: tf.Variable; accBeta2: tf.Variable };
    out["opt:iterations"] = String(o.iterations);
    out["opt:accBeta1"] = bits(o.accBeta1.dataSync());
    out["opt:accBeta2"] = bits(o.accBeta2.dataSync());
  }
  return out;
}

/** A wider MLP (a 64 × 256 kernel of 64 KiB) for the tests that count bytes read. */
export function wide(seed = 1): tfl.Sequential {
  return tfl.sequential({
    layers: [
      tfl.layers.dense({ units: 256, inputShape: [64], activation: "relu", kernelInitializer: tfl.initializers.glorotUniform({ seed }) }),
      tfl.layers.dense({ units: 8, kernelInitializer: tfl.initializers.glorotUniform({ seed: seed + 1 }) }),
    ],
  });
}
