/**
 * Crash loop of sharded saves: two ranks (started with `launch`, as `savepoint run -n 2` does, on
 * the built packages) save a ~3 MiB sharded model to the same path over and over, each step's
 * weights a deterministic function of the step; the test SIGKILLs one rank at a random moment,
 * then loads the path on one rank. Every time the checkpoint must be one whole version: a step
 * that was written (no earlier than the last save a rank saw complete), every weight element
 * equal to that step's value, even when the kill cut a save's swap between its renames. Folders
 * left by the killed save are never loaded as the checkpoint otherwise, the next job's saves
 * remove them, and succeed. CRASH_KILLS raises the number of kills (default 30).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Fabric, isTensorSource, launch, UnsupportedFormatError, type TensorSource } from "@savepoint/core";

const here = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(here, "../../..");
const KILLS = Number(process.env.CRASH_KILLS ?? 30);

/** The value of global element `g` of every weight at step `step` (exact in float32). */
const valueAt = (step: number, g: number) => (step * 7919 + g) % 65521;

/**
 * One rank: builds the model, then from step START on sets its rows to that step's values and
 * saves DIR/ckpt, appending the step to DIR/done-<rank> once the save returned. Rank 0 stops after
 * STOP steps when STOP is given (else it runs until killed).
 */
const RANK_SCRIPT = `
import { appendFileSync } from "node:fs";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import * as tfl from "@tensorflow/tfjs-layers";
import { Fabric } from "@savepoint/core";
import { FSDPStrategy } from "@savepoint/strategy-fsdp";
const [dir, start, stop] = process.argv.slice(1);
tf.env().set("PROD", true);
await tf.setBackend("cpu");
await tf.ready();
const valueAt = ${valueAt.toString()};
const strategy = new FSDPStrategy({ timeoutMs: 20000 });
const fabric = new Fabric({ strategy });
const model = strategy.setupModule(tfl.sequential({ layers: [
  tfl.layers.dense({ units: 1024, inputShape: [512] }),
  tfl.layers.dense({ units: 256 }),
] }));
const rank = strategy.rank;
for (let step = Number(start); stop === undefined || step < Number(start) + Number(stop); step++) {
  for (const p of model.parameters) {
    const row = p.shape.slice(1).reduce((a, b) => a * b, 1);
    const first = (p.sharded ? p.range.start : 0) * row;
    const n = p.local.size;
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = valueAt(step, first + i);
    tf.tidy(() => p.local.assign(tf.tensor(v, p.local.shape, "float32")));
  }
  await fabric.save(dir + "/ckpt", { model, step });
  appendFileSync(dir + "/done-" + rank, step + "\\n");
}
await strategy.collective.close?.();
`;

interface Job {
  kill(rank: number): void;
  done: Promise<{ exitCode: number; stderr: string }>;
}

async function job(dir: string, start: number, stop?: number): Promise<Job> {
  const h = await launch({
    nproc: 2,
    script: "-e",
    nodeArgs: ["--input-type=module"],
    args: [RANK_SCRIPT, dir, String(start), ...(stop === undefined ? [] : [String(stop)])],
    graceMs: 300,
    stdio: "pipe",
    log: () => {},
  });
  let stderr = "";
  for (const p of h.processes) p.stderr?.on("data", (d) => (stderr += d));
  for (const p of h.processes) p.stdout?.resume();
  const done = h.done.then((r) => ({ exitCode: r.exitCode, stderr }));
  return { kill: (rank) => h.processes[rank]!.kill("SIGKILL"), done };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Steps rank `rank` saw complete, in order. */
function doneSteps(dir: string, rank: number): number[] {
  const f = join(dir, `done-${rank}`);
  return existsSync(f) ? readFileSync(f, "utf8").split("\n").filter(Boolean).map(Number) : [];
}

async function floatsOf(t: TensorSource): Promise<Float32Array> {
  const out = new Uint8Array(t.byteLength);
  let at = 0;
  for await (const c of t.chunks(1 << 20)) {
    out.set(c, at);
    at += c.length;
  }
  expect(at).toBe(t.byteLength);
  return new Float32Array(out.buffer);
}

function leaves(tree: unknown, out: [string, unknown][] = [], prefix = ""): [string, unknown][] {
  if (isTensorSource(tree) || tree === null || typeof tree !== "object" || ArrayBuffer.isView(tree)) out.push([prefix, tree]);
  else for (const [k, v] of Object.entries(tree)) leaves(v, out, prefix ? `${prefix}.${k}` : k);
  return out;
}

/** Loads DIR/ckpt on one rank: the step it holds, after checking every weight is that step's. */
async function loadedStep(dir: string): Promise<number> {
  const tree = (await new Fabric().load(join(dir, "ckpt"))) as { step: unknown; model: unknown };
  expect(typeof tree.step).toBe("number");
  const step = tree.step as number;
  const weights = leaves(tree.model);
  expect(weights.length).toBe(4);
  let elements = 0;
  for (const [key, t] of weights) {
    expect(isTensorSource(t), key).toBe(true);
    const v = await floatsOf(t as TensorSource);
    for (let g = 0; g < v.length; g++) if (v[g] !== valueAt(step, g)) throw new Error(`${key}[${g}] is ${v[g]}, not step ${step}'s ${valueAt(step, g)}: the checkpoint mixes versions`);
    elements += v.length;
  }
  expect(elements).toBe(512 * 1024 + 1024 + 1024 * 256 + 256);
  return step;
}

let dir: string;
beforeAll(() => {
  for (const f of [join(REPO, "packages/core/dist/index.js"), join(REPO, "packages/strategy-fsdp/dist/index.js")]) {
    if (!existsSync(f)) throw new Error(`[test setup] ${f} is missing: run \`npm run build\` first (the ranks import the built packages).`);
  }
  dir = mkdtempSync(join(tmpdir(), "savepoint-fsdp-crash-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("sharded saves under SIGKILL", () => {
  it(`${KILLS} kills of a random rank at a random moment: the path always loads as one whole version, and saving goes on`, async () => {
    let next = 0;
    let last = -1;
    for (let k = 0; k < KILLS; k++) {
      const start = next;
      const j = await job(dir, start);
      // Wait until this job's first save is in place, then kill during the following ones.
      const t0 = Date.now();
      while (!doneSteps(dir, 0).some((s) => s >= start)) {
        if (Date.now() - t0 > 20_000) {
          j.kill(0);
          j.kill(1);
          throw new Error(`the ranks did not save within 20 s: ${(await j.done).stderr}`);
        }
        await sleep(5);
      }
      await sleep(Math.random() * 250);
      j.kill(Math.random() < 0.5 ? 0 : 1);
      const exit = await j.done;
      expect(exit.exitCode).not.toBe(0);

      const committed = Math.max(...doneSteps(dir, 0), ...doneSteps(dir, 1));
      const step = await loadedStep(dir);
      // A version that was written, no older than any save a rank saw complete nor than the last load.
      expect(step).toBeGreaterThanOrEqual(committed);
      expect(step).toBeGreaterThanOrEqual(last);
      expect(step).toBeLessThanOrEqual(committed + 1);
      last = step;
      // What is left beside the path is the killed save's own (its staging folder, and the old copy
      // when it died mid-swap): the job's earlier saves removed everything older.
      const staging = readdirSync(dir).filter((f) => f.startsWith(".ckpt."));
      expect(new Set(staging.map((f) => f.replace(/^\.ckpt\.savepoint-(dcp|old)-/, ""))).size).toBeLessThanOrEqual(1);
      for (const s of staging) {
        if (!readdirSync(join(dir, s)).includes(".metadata")) await expect(new Fabric().load(join(dir, s))).rejects.toBeInstanceOf(UnsupportedFormatError);
      }
      next = step + 1;
    }

    // After the last crash, a job saves to the path again and finishes cleanly.
    const j = await job(dir, next, 2);
    const exit = await j.done;
    expect(exit.exitCode, exit.stderr).toBe(0);
    expect(await loadedStep(dir)).toBe(next + 1);
    // The next job's first save finished any cut swap and removed every leftover of killed saves.
    expect(readdirSync(dir).filter((f) => f.startsWith(".ckpt."))).toEqual([]);
  }, 60_000 + KILLS * 4_000);
});
