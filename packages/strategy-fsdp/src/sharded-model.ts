import * as tf from "@tensorflow/tfjs-core";
import { allReduce, InvalidArgumentError, modelParameters, numel, writableStorage, type Collective } from "@savepoint/core";
import { gatherRows, type HostArray } from "./gather-rows.js";
import { filesReachEveryRank } from "./file-exchange.js";
import { rangeElements, rowRange, type RowRange } from "./shard-rows.js";

/** The parts of a tfjs-layers model (`tf.LayersModel`, `tf.Sequential`) the strategy uses. */
export type LayersModelLike = Parameters<typeof modelParameters>[0] & {
  readonly trainableWeights: readonly { read(): unknown }[];
};

/** One weight of a {@link ShardedModel}: what this rank holds of it. */
export interface ShardedParameter {
  /** The state-dict key, e.g. `dense.kernel`. */
  readonly key: string;
  /** The full shape. */
  readonly shape: readonly number[];
  readonly trainable: boolean;
  /** Split along dimension 0 across the ranks (trainable weights with at least one dimension). */
  readonly sharded: boolean;
  /** The rows this rank holds (all of them when not sharded). */
  readonly range: RowRange;
  /** The module's own variable: the full weight, filled by `gather()` before a forward pass. */
  readonly full: tf.Variable;
  /** What this rank owns and trains: its rows (the full variable itself when not sharded). */
  readonly local: tf.Variable;
}

const BRAND = Symbol.for("savepoint.fsdp.ShardedModel");
let instances = 0;

/** True for models wrapped by {@link ShardedModel} (any installed copy of this package). */
export function isShardedModel(value: unknown): value is ShardedModel {
  return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
}

/**
 * A tfjs-layers model trained fully sharded, as FSDP2 does: every trainable weight is split along
 * dimension 0 across the ranks, each rank owns its rows (`local`) and the optimizer state for them.
 * `step` gathers the full weights into the module for the forward and backward pass, averages
 * the gradients across the ranks through the collective, and updates each rank's rows only.
 * Non-trainable weights (batch-norm statistics) stay whole on every rank, as FSDP's buffers do.
 *
 * This is the simple, correct form: the module keeps its full variables as the buffer the
 * gathered weights go into, and gradients are all-reduced, then cut to each rank's rows.
 *
 * @example
 * ```ts
 * const model = strategy.setupModule(buildModel()); // same initial weights on every rank
 * const optimizer = tf.train.adam(1e-3);
 * const loss = await model.step(optimizer, () => tf.losses.softmaxCrossEntropy(y, model.module.apply(x) as tf.Tensor));
 * ```
 */
export class ShardedModel<M extends LayersModelLike = LayersModelLike> {
  readonly [BRAND] = true;
  /** The wrapped model: run it (after `gather()`, which `step` does) for forward passes. */
  readonly module: M;
  readonly collective: Collective;
  readonly parameters: readonly ShardedParameter[];
  readonly #byKey: ReadonlyMap<string, ShardedParameter>;
  #steps = 0;
  #gathers = 0;

  constructor(module: M, collective: Collective) {
    if (!module || !Array.isArray((module as { layers?: unknown }).layers) || !Array.isArray(module.trainableWeights)) {
      throw new InvalidArgumentError(`ShardedModel wraps a tfjs-layers model (tf.sequential, tf.model); got ${typeof module}.`);
    }
    this.module = module;
    this.collective = collective;
    const id = ++instances;
    const trainable = new Set<unknown>(module.trainableWeights);
    this.parameters = modelParameters(module).map(({ key, variable }): ShardedParameter => {
      const full = variable.read() as tf.Variable;
      const shape = [...full.shape];
      const isTrainable = trainable.has(variable);
      const sharded = isTrainable && shape.length > 0;
      if (!sharded) return { key, shape, trainable: isTrainable, sharded, range: { start: 0, rows: shape[0] ?? 1 }, full, local: full };
      const range = rowRange(shape[0]!, collective.rank, collective.worldSize);
      const rows = tf.slice(full, [range.start, ...shape.slice(1).map(() => 0)], [range.rows, ...shape.slice(1)]);
      const local = tf.variable(rows, true, `fsdp${id}/${key}`);
      rows.dispose();
      return { key, shape, trainable: true, sharded, range, full, local };
    });
    this.#byKey = new Map(this.parameters.map((p) => [p.key, p]));
  }

  get rank(): number {
    return this.collective.rank;
  }

  get worldSize(): number {
    return this.collective.worldSize;
  }

  /** The parameter under state-dict key `key`. */
  parameter(key: string): ShardedParameter | undefined {
    return this.#byKey.get(key);
  }

  /**
   * Fills the module's variables with the full weights, gathered from every rank's rows. Every
   * rank calls it (a collective operation); `step` does it first, call it yourself before
   * evaluating. Loading a checkpoint through the strategy does it too. Ranks on one machine pass
   * their rows through temporary files; others through the collective, in bounded messages.
   *
   * @example
   * ```ts
   * await model.gather();
   * const predictions = model.module.predict(batch);
   * ```
   */
  async gather(tag?: string): Promise<void> {
    const sharded = this.parameters.filter((p) => p.sharded);
    const name = tag ?? `fsdp gather ${++this.#gathers}`;
    // Gathered straight into each full variable's own storage where tfjs allows it: no full-size
    // allocation per gather (its page faults and collections cost more than the copy itself).
    // Each rank's rows read once (on a GPU backend, dataSync downloads them).
    const rows = sharded.map((p) => p.local.dataSync() as HostArray);
    const into = sharded.map((p, i) => inPlace(p.full, rows[i]!));
    const wholes = await gatherRows(
      this.collective,
      name,
      sharded.map((p, i) => ({ key: p.key, shape: p.shape, rows: rows[i]!, into: into[i] })),
      { throughFiles: await filesReachEveryRank(this.collective, name) },
    );
    sharded.forEach((p, i) => {
      if (into[i]) return;
      const t = tf.tensor(wholes[i]!, [...p.shape], p.full.dtype);
      p.full.assign(t);
      t.dispose();
    });
  }

  /**
   * One training step on every rank: gathers the weights, computes `loss` (which runs
   * `this.module` on this rank's batch) and its gradients, averages the gradients over the ranks,
   * and lets `optimizer` update this rank's rows. Resolves with this rank's loss.
   */
  async step(optimizer: tf.Optimizer, loss: () => tf.Scalar, options: { tag?: string } = {}): Promise<number> {
    const tag = options.tag ?? `fsdp step ${++this.#steps}`;
    await this.gather(`${tag}: gather weights`);
    const params = this.parameters.filter((p) => p.trainable);
    const { value, grads } = optimizer.computeGradients(loss, params.map((p) => p.full));
    try {
      const mine = params.map((p) => (grads[p.full.name]?.dataSync() as Float32Array | undefined) ?? new Float32Array(numel(p.shape)));
      const mean = await allReduce(this.collective, `${tag}: reduce gradients`, mine, "mean");
      const update: tf.NamedTensorMap = {};
      params.forEach((p, i) => {
        const per = rangeElements(p.shape, { start: 0, rows: 1 });
        const g = p.sharded ? mean[i]!.subarray(p.range.start * per, (p.range.start + p.range.rows) * per) : mean[i]!;
        update[p.local.name] = tf.tensor(g, [...p.local.shape], "float32");
      });
      optimizer.applyGradients(update);
      tf.dispose(Object.values(update));
      return value.dataSync()[0]!;
    } finally {
      tf.dispose([value, ...Object.values(grads)]);
    }
  }

  /** Releases the rows this rank owns (the module's own variables stay the module's). */
  dispose(): void {
    for (const p of this.parameters) if (p.sharded) p.local.dispose();
  }
}

/** The full variable's own storage as an array of the rows' type, when tfjs lets it be written in place. */
function inPlace(full: tf.Variable, rows: HostArray): HostArray | undefined {
  const bytes = writableStorage(full);
  const Type = rows.constructor as { new (buffer: ArrayBufferLike, offset: number, length: number): HostArray; BYTES_PER_ELEMENT: number };
  if (!bytes || bytes.byteLength !== full.size * Type.BYTES_PER_ELEMENT || bytes.byteOffset % Type.BYTES_PER_ELEMENT !== 0) return undefined;
  return new Type(bytes.buffer, bytes.byteOffset, full.size);
}
