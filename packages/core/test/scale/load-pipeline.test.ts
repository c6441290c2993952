// Loading many variables at once: records are read ahead into a staging ring and copied into the
// variables' own storage in order, each once complete and verified; a damaged record stops the
// load with the variables before it loaded and it and those after it untouched. Optimizers load
// into the slot variables they already have.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CorruptCheckpointError, Fabric, HostTensor, StrictLoadError } from "../../src/index.js";
import { mlp, step, tf, useCpu } from "../helpers/tfjs.js";

let dir: string;
beforeAll(async () => {
  await useCpu();
  dir = mkdtempSync(join(tmpdir(), "savepoint-pipeline-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The tensor the damage test breaks: the only one with negative values, so its bytes are easy to find. */
const DAMAGED = 5;
/** Values that differ per tensor and generation, so a misplaced or stale byte shows. */
const values = (n: number, k: number, gen: number) => Float32Array.from({ length: n }, (_, i) => (k === DAMAGED ? -1 : 1) * (gen * 1e6 + k * 1e3 + i));
const owned = (v: Float32Array) => tf.tidy(() => tf.variable(tf.tensor(v)));
// Small records (shared read-ahead blocks) and big ones (read in pieces), mixed.
const SIZES = [3, 4096, 17, 300_000, 1, 65_536, 5, 1 << 20, 2, 40_000];

async function saveState(name: string, gen: number): Promise<string> {
  const path = join(dir, name);
  const state: Record<string, unknown> = {};
  SIZES.forEach((n, k) => (state[`t${k}`] = HostTensor.fromValues("float32", [n], values(n, k, gen))));
  await new Fabric().save(path, state);
  return path;
}

describe("loading many variables with reads ahead", () => {
  it("copies every record, exactly, into the storage each variable already has", async () => {
    const path = await saveState("many.pt", 2);
    const vars = SIZES.map((n, k) => owned(values(n, k, 1)));
    const storages = vars.map((v) => v.dataSync());
    // Model and optimizer adapters hand all their variables to assignAll; call it directly here.
    const fabric = new Fabric();
    const ckpt = (await fabric.load(path)) as Record<string, HostTensor>;
    await fabric.backend.assignAll!(vars.map((v, k) => ({ target: v, source: ckpt[`t${k}`]!, key: `t${k}` })));
    vars.forEach((v, k) => {
      expect(v.dataSync()).toBe(storages[k]);
      expect(Array.from(v.dataSync())).toEqual(Array.from(values(SIZES[k]!, k, 2)));
    });
    tf.dispose(vars);
  });

  it("stops at a damaged record, naming it: variables before it are loaded, it and those after untouched", async () => {
    const path = await saveState("damaged.pt", 2);
    const bytes = readFileSync(path);
    // Damage the middle of record t5 (65,536 floats): find a run of its values.
    const needle = Buffer.from(values(65_536, 5, 2).subarray(1000, 1004).buffer);
    const at = bytes.indexOf(needle);
    expect(at).toBeGreaterThan(0);
    bytes[at + 2]! ^= 0x01;
    writeFileSync(path, bytes);
    const vars = SIZES.map((n, k) => owned(values(n, k, 1)));
    const fabric = new Fabric();
    const ckpt = (await fabric.load(path)) as Record<string, HostTensor>;
    const err = await fabric.backend.assignAll!(vars.map((v, k) => ({ target: v, source: ckpt[`t${k}`]!, key: `t${k}` }))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptCheckpointError);
    expect((err as Error).message).toMatch(/^\[savepoint\] .*damaged\.pt:archive\/data\/\d+ is damaged/);
    vars.forEach((v, k) => expect(v.dataSync()[0]).toBe(values(1, k, k < DAMAGED ? 2 : 1)[0]));
    expect(Array.from(vars[5]!.dataSync())).toEqual(Array.from(values(65_536, 5, 1)));
    // The ring is free again: the next load works.
    const fresh = SIZES.map((n, k) => owned(values(n, k, 1)));
    const good = await saveState("good.pt", 3);
    const ckpt2 = (await fabric.load(good)) as Record<string, HostTensor>;
    await fabric.backend.assignAll!(fresh.map((v, k) => ({ target: v, source: ckpt2[`t${k}`]!, key: `t${k}` })));
    fresh.forEach((v, k) => expect(v.dataSync()[SIZES[k]! - 1]).toBe(values(SIZES[k]!, k, 3)[SIZES[k]! - 1]));
    tf.dispose([...vars, ...fresh]);
  });
});

describe("optimizer state loads into the slots the optimizer already has", () => {
  const slots = (opt: tf.Optimizer) => {
    const o = opt as unknown as { accumulatedFirstMoment: { originalName: string; variable: tf.Variable }[]; accumulatedSecondMoment: { originalName: string; variable: tf.Variable }[] };
    return [...o.accumulatedFirstMoment, ...o.accumulatedSecondMoment];
  };

  it("keeps the same slot objects, variables and storage, with the saved values", async () => {
    const path = join(dir, "adam.ckpt");
    const model = mlp(1);
    const opt = tf.train.adam(0.01);
    for (let i = 0; i < 3; i++) step(model, opt, i);
    await new Fabric().save(path, { model, optimizer: opt });
    const saved = slots(opt).map((s) => Array.from(s.variable.dataSync()));

    // A second run at another point: its own slots, other values.
    const model2 = mlp(1);
    const opt2 = tf.train.adam(0.01);
    for (let i = 0; i < 5; i++) step(model2, opt2, i + 10);
    const before = slots(opt2);
    const objects = before.map((s) => s);
    const variables = before.map((s) => s.variable);
    const storages = before.map((s) => s.variable.dataSync());
    const tensorsBefore = tf.memory().numTensors;
    await new Fabric().load(path, { model: model2, optimizer: opt2 });
    const after = slots(opt2);
    expect(after).toEqual(objects);
    after.forEach((s, k) => {
      expect(s).toBe(objects[k]);
      expect(s.variable).toBe(variables[k]);
      expect(s.variable.dataSync()).toBe(storages[k]);
      expect(Array.from(s.variable.dataSync())).toEqual(saved[k]);
    });
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(opt2.iterations).toBe(3);
  });

  it("leaves the optimizer untouched when the checkpoint does not fit it", async () => {
    const path = join(dir, "adam-bad.ckpt");
    const model = mlp(1);
    const opt = tf.train.adam(0.01);
    step(model, opt, 0);
    const fabric = new Fabric();
    await fabric.save(path, { model, optimizer: opt });
    const ckpt = (await fabric.load(path)) as { model: Record<string, unknown>; optimizer: { state: Record<string, Record<string, unknown>>; param_groups: unknown[] } };
    // The last parameter's exp_avg_sq has the wrong shape: found before anything is read or written.
    const last = String(Object.keys(ckpt.optimizer.state).length - 1);
    ckpt.optimizer.state[last]!.exp_avg_sq = HostTensor.fromValues("float32", [1], [9]);

    const model2 = mlp(1);
    const opt2 = tf.train.adam(0.5);
    for (let i = 0; i < 2; i++) step(model2, opt2, i + 10);
    const before = slots(opt2).map((s) => ({ s, v: s.variable, values: Array.from(s.variable.dataSync()) }));
    const { restoreState } = await import("../../src/strategies/state-conversion.js");
    await expect(restoreState({ optimizer: opt2, model: model2 }, { model: ckpt.model, optimizer: ckpt.optimizer }, true, { backend: fabric.backend, adapters: fabric.adapters }, path)).rejects.toBeInstanceOf(StrictLoadError);
    const after = slots(opt2);
    after.forEach((s, k) => {
      expect(s).toBe(before[k]!.s);
      expect(s.variable).toBe(before[k]!.v);
      expect(s.variable.isDisposed).toBe(false);
      expect(Array.from(s.variable.dataSync())).toEqual(before[k]!.values);
    });
    expect(opt2.iterations).toBe(2);
  });

  it("creates the slots a fresh optimizer lacks, and drops the ones the checkpoint does not have", async () => {
    const path = join(dir, "adam-fresh.ckpt");
    const model = mlp(1);
    const opt = tf.train.adam(0.01);
    step(model, opt, 0);
    await new Fabric().save(path, { model, optimizer: opt });
    const fresh = tf.train.adam(0.01);
    const model2 = mlp(1);
    await new Fabric().load(path, { model: model2, optimizer: fresh });
    expect(slots(fresh).map((s) => Array.from(s.variable.dataSync()))).toEqual(slots(opt).map((s) => Array.from(s.variable.dataSync())));
  });
});
