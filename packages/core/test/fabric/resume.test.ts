import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Fabric } from "../../src/index.js";
import { REPO } from "../helpers/fixtures.js";
import { mlp, step, tf, useCpu, weightBits } from "../helpers/tfjs.js";

let dir: string;
beforeAll(async () => {
  await useCpu();
  dir = mkdtempSync(join(tmpdir(), "savepoint-resume-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const worker = join(REPO, "examples/demo/worker.mjs");
const run = (...args: string[]) => JSON.parse(execFileSync(process.execPath, [worker, ...args], { encoding: "utf8" }).trim().split("\n").pop()!);

describe("bit-identical resume in a fresh process", () => {
  for (const kind of ["adam", "momentum"]) {
    it(`${kind}: 10 steps, save, new process, load, 10 steps equals 20 uninterrupted steps`, () => {
      const ckpt = join(dir, `${kind}.ckpt`);
      run("first", ckpt, kind);
      const resumed = run("resume", ckpt, kind);
      const full = run("full", "-", kind);
      expect(resumed.resumedAt).toBe(10);
      expect(Object.keys(resumed.fingerprint).length).toBeGreaterThanOrEqual(5);
      expect(resumed.fingerprint).toEqual(full.fingerprint);
    });
  }
});

describe("every built-in tfjs optimizer resumes bit for bit into fresh objects", () => {
  const make: Record<string, () => tf.Optimizer> = {
    sgd: () => tf.train.sgd(0.1),
    momentum: () => tf.train.momentum(0.05, 0.9, true),
    adam: () => tf.train.adam(0.01, 0.9, 0.99),
    adamax: () => tf.train.adamax(0.01),
    adagrad: () => tf.train.adagrad(0.1),
    adadelta: () => tf.train.adadelta(1.0),
    rmsprop: () => tf.train.rmsprop(0.01, 0.9, 0.5, 1e-7, true),
  };
  for (const [kind, create] of Object.entries(make)) {
    it(kind, async () => {
      const fabric = new Fabric();
      const a = mlp(1);
      const optA = create();
      for (let i = 0; i < 12; i++) step(a, optA, i);

      const b = mlp(1);
      const optB = create();
      for (let i = 0; i < 6; i++) step(b, optB, i);
      const path = join(dir, `${kind}-mid.ckpt`);
      await fabric.save(path, { model: b, optimizer: optB, i: 6 });

      const c = mlp(3);
      const optC = kind === "sgd" ? tf.train.sgd(0.7) : create();
      const state = { model: c, optimizer: optC, i: 0 };
      await fabric.load(path, state);
      for (let i = state.i; i < 12; i++) step(c, optC, i);
      expect(weightBits(c)).toEqual(weightBits(a));
      expect(optC.iterations).toBe(optA.iterations);
    });
  }
});

describe("optimizer state keyed by parameter name (FSDP full checkpoints)", () => {
  it("loads into a fresh optimizer like index-keyed state", async () => {
    const fabric = new Fabric();
    const model = mlp(1);
    const opt = tf.train.adam(0.01);
    for (let i = 0; i < 3; i++) step(model, opt, i);
    const path = join(dir, "by-index.ckpt");
    await fabric.save(path, { model, optimizer: opt });
    const ckpt = await fabric.load(path);
    const sd = ckpt.optimizer as { state: Record<string, unknown>; param_groups: unknown[] };
    const names = ["dense.kernel", "dense.bias", "dense_1.kernel", "dense_1.bias"];
    const byName = { state: Object.fromEntries(Object.entries(sd.state).map(([i, v]) => [names[Number(i)]!, v])), param_groups: sd.param_groups };
    const target = mlp(5);
    const fresh = tf.train.adam(0.5);
    await fabric.load(path, { model: target });
    const { restoreState } = await import("../../src/index.js");
    await restoreState({ model: target, optimizer: fresh }, { model: ckpt.model, optimizer: byName }, true, { backend: fabric.backend, adapters: fabric.adapters }, path);
    const a = (opt as unknown as { accumulatedFirstMoment: { variable: tf.Variable }[] }).accumulatedFirstMoment;
    const b = (fresh as unknown as { accumulatedFirstMoment: { variable: tf.Variable }[] }).accumulatedFirstMoment;
    expect(b.map((s) => Array.from(s.variable.dataSync()))).toEqual(a.map((s) => Array.from(s.variable.dataSync())));
    expect(fresh.iterations).toBe(3);
    const bad = { state: { "no.such.param": Object.values(sd.state)[0] }, param_groups: sd.param_groups };
    await expect(restoreState({ model: target, optimizer: tf.train.adam(0.1) }, { model: ckpt.model, optimizer: bad }, true, { backend: fabric.backend, adapters: fabric.adapters }, path)).rejects.toThrow(/"no\.such\.param"/);
  });
});
