import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cpuBackend, Fabric, NodeFileIO } from "@savepoint/core";
import type { Page } from "playwright-core";
import { buildModel, buildOptimizer, trainStep, weightBits } from "../demo/src/model.js";
import { launchChromium, serveStatic, skipWithoutChromium } from "./helpers/chromium.js";

/** What the demo page exposes as `window.demo` (demo/src/main.ts). */
interface Demo {
  ready: Promise<string>;
  resumedFrom(): number | null;
  resumedBits(): number[][] | null;
  step(): number;
  paused(): boolean;
  weightBits(): Promise<number[][]>;
  uninterruptedBits(steps: number): Promise<number[][]>;
  importCheckpoint(base64: string): Promise<{ step: unknown; bits: number[][] }>;
  ioChecks(kind: string): Promise<Array<{ name: string; ok: boolean; error?: string; syncAccess: boolean }>>;
}
declare const demo: Demo;

const here = fileURLToPath(new URL(".", import.meta.url));
const OUTPUT = join(here, "..", "test-output");
const skip = skipWithoutChromium();

describe.skipIf(skip)("demo page in headless chromium (WebGPU, OPFS)", () => {
  let work: string;
  let server: Awaited<ReturnType<typeof serveStatic>>;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "savepoint-demo-"));
    const { build } = await import("vite");
    await build({ configFile: join(here, "..", "demo", "vite.config.ts"), logLevel: "error", build: { outDir: join(work, "site"), minify: false, chunkSizeWarningLimit: 1e9 } });
    server = await serveStatic(join(work, "site"));
    browser = await launchChromium();
    page = await browser.context.newPage();
    page.on("pageerror", (e) => pageErrors.push(e.message));
    tf.env().set("PROD", true); // quiets tfjs's "install tfjs-node" banner
    await tf.setBackend("cpu");
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("trains on WebGPU, checkpoints to OPFS, and after a reload resumes with the same step and weights", async () => {
    await page.goto(`${server.url}/index.html?steps=9&every=3&pauseAt=6`);
    // Like a tab closed mid-run: paused at step 6, right after the checkpoint of step 6.
    await page.waitForFunction(() => typeof demo !== "undefined" && demo.step() === 6 && demo.paused(), undefined, { timeout: 120_000, polling: 100 });
    expect(await page.evaluate(() => demo.resumedFrom())).toBeNull();
    const atSix = await page.evaluate(() => demo.weightBits());

    await page.reload();
    expect(await page.evaluate(() => demo.ready)).toBe("done");
    expect(await page.evaluate(() => demo.resumedFrom())).toBe(6);
    expect(await page.evaluate(() => demo.resumedBits())).toEqual(atSix);
    expect(await page.evaluate(() => demo.step())).toBe(9);
    // Resumed training continues exactly where uninterrupted training would be.
    const resumed = await page.evaluate(() => demo.weightBits());
    expect(resumed).toEqual(await page.evaluate(() => demo.uninterruptedBits(9)));
    expect(await page.textContent("#backend")).toMatch(/^webgpu/);
    expect(await page.textContent("#storage")).toBe("browser OPFS");
    mkdirSync(OUTPUT, { recursive: true });
    await page.screenshot({ path: join(OUTPUT, "backend-webgpu-demo.png"), fullPage: true });
    expect(pageErrors).toEqual([]);
  });

  it("offers the checkpoint as a download that loads in Node on the CPU backend, bit for bit", async () => {
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download")]);
    const file = join(work, "downloaded.ckpt");
    await download.saveAs(file);
    const state = { model: buildModel(), optimizer: buildOptimizer(), step: 0 };
    await new Fabric({ backend: cpuBackend(), io: new NodeFileIO() }).load(file, state);
    expect(state.step).toBe(9);
    expect(await weightBits(state.model)).toEqual(await page.evaluate(() => demo.weightBits()));
  });

  it("loads a checkpoint saved in Node into the page, bit for bit", async () => {
    const model = buildModel();
    const optimizer = buildOptimizer();
    for (let s = 0; s < 4; s++) await trainStep(model, optimizer, s);
    const file = join(work, "from-node.ckpt");
    await new Fabric({ backend: cpuBackend(), io: new NodeFileIO() }).save(file, { model, optimizer, step: 4 });
    const b64 = readFileSync(file).toString("base64");
    const got = await page.evaluate((b) => demo.importCheckpoint(b), b64);
    expect(got.step).toBe(4);
    expect(got.bits).toEqual(await weightBits(model));
  });

  // A port of runIOConformance (demo/src/io-checks.ts), run where the IO lives.
  for (const [kind, sync] of [["opfs", false], ["opfs-worker", true], ["indexeddb", false]] as const) {
    it(`CheckpointIO conformance in the page: ${kind}`, async () => {
      const results = await page.evaluate((k) => demo.ioChecks(k), kind);
      expect(results.map((r) => r.name)).toHaveLength(4);
      expect(results.filter((r) => !r.ok).map((r) => `${r.name}: ${r.error}`)).toEqual([]);
      if (kind !== "indexeddb") expect(results.every((r) => r.syncAccess === sync)).toBe(true);
    });
  }
});
