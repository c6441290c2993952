import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { createLocalGroup, MemoryIO, SingleProcessCollective } from "@savepoint/core";
import { rowRange, ShardedModel } from "../src/index.js";
import { batch, closeGroups, mlp, ranks, tf, tfl, train, useCpu } from "./helpers.js";

beforeAll(useCpu);
afterEach(closeGroups);

const bits = (t: tf.Tensor) => Array.from(new Uint32Array(new Float32Array(t.dataSync()).buffer));

describe("ShardedModel", () => {
  it("splits dimension 0 as FSDP2 does (torch.chunk, empty shards at the end)", () => {
    expect([0, 1].map((r) => rowRange(6, r, 2))).toEqual([{ start: 0, rows: 3 }, { start: 3, rows: 3 }]);
    expect([0, 1].map((r) => rowRange(3, r, 2))).toEqual([{ start: 0, rows: 2 }, { start: 2, rows: 1 }]);
    expect([0, 1, 2, 3].map((r) => rowRange(3, r, 4).rows)).toEqual([1, 1, 1, 0]);
    expect([0, 1, 2].map((r) => rowRange(16, r, 3).rows)).toEqual([6, 6, 4]);
  });

  it("holds only its rows of each trainable weight; gather() puts the full weights back into the module", async () => {
    const group = ranks(4, new MemoryIO(), () => mlp(3));
    const reference = mlp(3);
    for (const r of group) {
      const kernel = r.model.parameter("dense_1.kernel")!; // 5 × 3 → 2, 2, 1, 0 rows
      expect(kernel.local.shape).toEqual([rowRange(5, r.model.rank, 4).rows, 3]);
      for (const p of r.model.parameters) p.full.assign(tf.zerosLike(p.full));
    }
    await Promise.all(group.map((r) => r.model.gather()));
    for (const r of group) expect(r.model.module.weights.map((w) => bits(w.read()))).toEqual(reference.weights.map((w) => bits(w.read())));
  });

  it("gather() writes into each full weight's own storage; a weight whose storage another tensor shares gets a fresh one, and that tensor keeps its values", async () => {
    const group = ranks(2, new MemoryIO(), () => mlp(3));
    const reference = mlp(3);
    const storageOf = (v: tf.Variable) => (tf.backend() as unknown as { data: { get(id: object): { values: Float32Array } } }).data.get(v.dataId).values;
    const before = group.map((r) => {
      // Disposed after the assign, so each variable is the only owner of its storage.
      for (const p of r.model.parameters) tf.tidy(() => p.full.assign(tf.zerosLike(p.full)));
      return r.model.parameters.map((p) => ({ storage: storageOf(p.full), dataId: p.full.dataId }));
    });
    // Rank 1 keeps a tensor sharing one weight's storage (as a user's `read()` result would).
    const shared = group[1]!.model.parameters[0]!;
    const alias = tf.clone(shared.full);
    await Promise.all(group.map((r) => r.model.gather()));
    group.forEach((r, k) => {
      expect(r.model.module.weights.map((w) => bits(w.read()))).toEqual(reference.weights.map((w) => bits(w.read())));
      r.model.parameters.forEach((p, i) => {
        const inPlace = !(k === 1 && i === 0);
        // In place: the same storage now holds the gathered values, no new tensor was made.
        expect(storageOf(p.full) === before[k]![i]!.storage).toBe(inPlace);
        if (inPlace) expect(p.full.dataId).toBe(before[k]![i]!.dataId);
      });
    });
    expect(Array.from(alias.dataSync()).every((x) => x === 0)).toBe(true);
    alias.dispose();
  });

  it("trains bit for bit like the unsharded model (two ranks, the same batch on both)", async () => {
    const group = ranks(2, new MemoryIO(), () => mlp(5));
    const plain = mlp(5);
    const adam = tf.train.adam(0.01, 0.9, 0.99);
    for (let s = 0; s < 5; s++) {
      const { x, y } = batch(s, 0);
      await Promise.all(group.map((r) => r.model.step(r.optimizer, () => tf.losses.softmaxCrossEntropy(y, r.model.module.apply(x) as tf.Tensor) as tf.Scalar)));
      adam.minimize(() => tf.losses.softmaxCrossEntropy(y, plain.apply(x) as tf.Tensor) as tf.Scalar, false, plain.trainableWeights.map((w) => w.read() as tf.Variable));
      tf.dispose([x, y]);
    }
    await Promise.all(group.map((r) => r.model.gather()));
    for (const r of group) expect(r.model.module.weights.map((w) => bits(w.read()))).toEqual(plain.weights.map((w) => bits(w.read())));
  });

  it("keeps ranks on different batches in step (averaged gradients), and works in a world of one", async () => {
    const group = ranks(3, new MemoryIO(), () => mlp(2));
    await train(group, 0, 3);
    await Promise.all(group.map((r) => r.model.gather()));
    const first = group[0]!.model.module.weights.map((w) => bits(w.read()));
    for (const r of group) expect(r.model.module.weights.map((w) => bits(w.read()))).toEqual(first);
    const single = new ShardedModel(mlp(2), new SingleProcessCollective());
    expect(single.parameters.every((p) => p.local.shape.join() === p.shape.join())).toBe(true);
  });

  it("refuses to gather when the ranks wrap different models, naming the rank", async () => {
    const [a, b] = createLocalGroup(2, { timeoutMs: 2000 });
    const m0 = new ShardedModel(mlp(1), a!);
    const m1 = new ShardedModel(tfl.sequential({ layers: [tfl.layers.dense({ units: 7, inputShape: [6] }), tfl.layers.dense({ units: 3 })] }), b!);
    const results = await Promise.allSettled([m0.gather(), m1.gather()]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    expect(String((results[0] as PromiseRejectedResult).reason)).toMatch(/rank 1 holds/);
    await Promise.all([a!.close?.(), b!.close?.()]);
  });
});
