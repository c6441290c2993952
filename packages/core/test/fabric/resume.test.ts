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
