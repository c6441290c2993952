import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Fabric, InvalidArgumentError, isStoredTensor, StrictLoadError, type StoredTensor } from "../../src/index.js";
import { mlp, step, tf, useCpu, weightBits } from "../helpers/tfjs.js";

// The examples of Lightning Fabric's checkpoint guide, one test each, with tfjs objects.
let dir: string;
beforeAll(async () => {
  await useCpu();
  dir = mkdtempSync(join(tmpdir(), "savepoint-seed-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("seed examples", () => {
  it("saves and loads { model1, model2, optimizer, iteration, hparams }", async () => {
    const fabric = new Fabric();
    const model1 = mlp(1);
    const model2 = mlp(2);
    const optimizer = tf.train.adam(0.01);
    for (let i = 0; i < 3; i++) step(model1, optimizer, i);
    const state = { model1, model2, optimizer, iteration: 3, hparams: { lr: 0.01, name: "run-1", layers: [6, 2], nested: { flag: true, none: null } } };
    const path = join(dir, "state.ckpt");
    await fabric.save(path, state);

    const fresh = { model1: mlp(7), model2: mlp(8), optimizer: tf.train.adam(0.5), iteration: 0, hparams: {} };
    const remainder = await fabric.load(path, fresh);
    expect(remainder).toEqual({});
    expect(weightBits(fresh.model1)).toEqual(weightBits(model1));
    expect(weightBits(fresh.model2)).toEqual(weightBits(model2));
    expect(fresh.iteration).toBe(3);
    expect(fresh.hparams).toEqual(state.hparams);
    expect((fresh.optimizer as unknown as { learningRate: number }).learningRate).toBe(0.01);
    expect(fresh.optimizer.iterations).toBe(3);
  });

  it("restores part of the state and returns the remainder", async () => {
    const fabric = new Fabric();
    const path = join(dir, "partial.ckpt");
    const model = mlp(1);
    await fabric.save(path, { model, optimizer: tf.train.sgd(0.1), iteration: 5, note: "hello" });
    const target = { model: mlp(3) };
    const remainder = await fabric.load(path, target);
    expect(weightBits(target.model)).toEqual(weightBits(model));
    expect(Object.keys(remainder).sort()).toEqual(["iteration", "note", "optimizer"]);
    expect(remainder.iteration).toBe(5);
    expect(remainder.note).toBe("hello");
  });

  it("returns the raw full checkpoint with lazily loaded tensors", async () => {
    const fabric = new Fabric();
    const path = join(dir, "raw.ckpt");
    const model = mlp(1);
    await fabric.save(path, { model, iteration: 2 });
    const ckpt = await fabric.load(path);
    expect(ckpt.iteration).toBe(2);
    const sd = ckpt.model as Record<string, StoredTensor>;
    expect(Object.keys(sd)).toEqual(["dense.kernel", "dense.bias", "dense_1.kernel", "dense_1.bias"]);
    expect(isStoredTensor(sd["dense.kernel"])).toBe(true);
    expect(sd["dense.kernel"]!.shape).toEqual([4, 6]);
    expect(Array.from((await sd["dense.kernel"]!.data()) as Float32Array)).toEqual(Array.from(model.weights[0]!.read().dataSync()));
  });

  it("keeps state-dict keys stable across instances built in one process", async () => {
    const fabric = new Fabric();
    const a = mlp(1);
    const b = mlp(1);
    expect(a.layers[0]!.name).not.toBe(b.layers[0]!.name);
    const path = join(dir, "stable.ckpt");
    await fabric.save(path, { model: a });
    await fabric.load(path, { model: b });
  });

  it("loads a bare model file and a bare optimizer file with loadRaw", async () => {
    const fabric = new Fabric();
    const model = mlp(1);
    const optimizer = tf.train.momentum(0.05, 0.9);
    for (let i = 0; i < 4; i++) step(model, optimizer, i);
    await fabric.save(join(dir, "model.pt"), (await fabric.load(await saved(fabric, { model }))).model as Record<string, unknown>);
    const target = mlp(9);
    await fabric.loadRaw(join(dir, "model.pt"), target);
    expect(weightBits(target)).toEqual(weightBits(model));

    const whole = await fabric.load(await saved(fabric, { model, optimizer }));
    await fabric.save(join(dir, "optimizer.pt"), whole.optimizer as Record<string, unknown>);
    const opt2 = tf.train.momentum(0.5, 0.1);
    await fabric.loadRaw(join(dir, "optimizer.pt"), opt2, { model: target });
    expect(opt2.iterations).toBe(4);
    const m1 = (optimizer as unknown as { accumulations: { variable: tf.Variable }[] }).accumulations;
    const m2 = (opt2 as unknown as { accumulations: { variable: tf.Variable }[] }).accumulations;
    expect(m2.map((s) => Array.from(s.variable.dataSync()))).toEqual(m1.map((s) => Array.from(s.variable.dataSync())));
  });

  it("fails a strict load with a clear error and loads a model without the bias with strict: false", async () => {
    const fabric = new Fabric();
    const path = join(dir, "with-bias.pt");
    const withBias = mlp(1);
    await fabric.save(path, { model: withBias });
    const noBias = mlp(5, { useBias: false });
    const before = weightBits(noBias);
    const err = await fabric.load(path, { model: noBias }).catch((e) => e);
    expect(err).toBeInstanceOf(StrictLoadError);
    expect(String(err.message)).toMatch(/^\[savepoint\].*unexpected key\(s\) "dense\.bias", "dense_1\.bias".*strict: false/);
    expect(weightBits(noBias)).toEqual(before);
    await fabric.load(path, { model: noBias }, { strict: false });
    expect(weightBits(noBias)).toEqual([weightBits(withBias)[0], weightBits(withBias)[2]]);
  });

  it("saves a partial checkpoint with a filter", async () => {
    const fabric = new Fabric();
    const path = join(dir, "filtered.ckpt");
    const model = mlp(1);
    await fabric.save(path, { model, iteration: 1 }, { filter: { model: (key) => key.includes("kernel") } });
    const ckpt = await fabric.load(path);
    expect(Object.keys(ckpt.model as object)).toEqual(["dense.kernel", "dense_1.kernel"]);
    expect(ckpt.iteration).toBe(1);
    await expect(fabric.save(path, { model }, { filter: { optimizer: () => true } })).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it("leaves no temporary files behind", () => {
    expect(readdirSync(dir).filter((f) => f.includes("savepoint-tmp"))).toEqual([]);
  });
});

let n = 0;
async function saved(fabric: Fabric, state: Record<string, unknown>): Promise<string> {
  const path = join(dir, `tmp-${n++}.ckpt`);
  await fabric.save(path, state);
  return path;
}
