import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { SavepointError } from "@savepoint/core";
import { adapterRecipes } from "../src/node/adapter-choices.js";
import { loadOptional } from "../src/node/load-optional.js";
import { nodeWebGpuOrSkip } from "./helpers/node-webgpu.js";

const pkg = fileURLToPath(new URL("..", import.meta.url));

describe("setupNodeWebGpu", () => {
  it("names the npm install line when an optional package is missing", async () => {
    const missing = Object.assign(new Error("Cannot find package 'webgpu' imported from x"), { code: "ERR_MODULE_NOT_FOUND" });
    const err = await loadOptional("webgpu", "WebGPU in Node", () => Promise.reject(missing)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SavepointError);
    expect((err as Error).message).toMatch(/npm install webgpu/);
    const broken = await loadOptional("webgpu", "WebGPU in Node", () => Promise.reject(new Error("dawn.node: invalid ELF header"))).catch((e: unknown) => e);
    expect((broken as Error).message).toMatch(/loading webgpu failed: dawn\.node: invalid ELF header/);
  });

  it('tries the machine\'s GPU, then SwiftShader, then llvmpipe in compatibility mode for "auto"', () => {
    expect(adapterRecipes("auto", "/nonexistent/icd.json").map((r) => [r.name, r.featureLevel ?? "core", r.unavailable !== undefined])).toEqual([
      ["default", "core", false],
      ["swiftshader", "core", true],
      ["llvmpipe", "compatibility", false],
    ]);
    expect(adapterRecipes("llvmpipe").map((r) => r.flags)).toEqual([["backend=opengles"]]);
  });

  it("registers tfjs's webgpu backend even when the package was imported before navigator.gpu existed", async () => {
    if (!(await nodeWebGpuOrSkip())) return;
    const dist = `${pkg}/dist/node.js`;
    if (!existsSync(dist)) throw new Error(`[test setup] ${dist} is missing: run \`npm run build\` first (this test runs the built package in a fresh Node).`);
    // ES imports are hoisted: a user's `import "@tensorflow/tfjs-backend-webgpu"` runs before any setup.
    const script = `
      import * as tf from "@tensorflow/tfjs-core";
      import "@tensorflow/tfjs-backend-webgpu";
      const before = tf.findBackendFactory("webgpu") !== null;
      const { setupNodeWebGpu } = await import(${JSON.stringify(dist)});
      const info = await setupNodeWebGpu({ adapter: process.env.SAVEPOINT_WEBGPU_ADAPTER ?? "auto" });
      const t = tf.square(tf.tensor([1, 2, 3]));
      console.log(JSON.stringify({ before, backend: tf.getBackend(), values: Array.from(await t.data()), adapter: info.adapter }));
      process.exit(0);`;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { cwd: pkg, encoding: "utf8", timeout: 60_000 });
    const line = r.stdout.trim().split("\n").pop() ?? "";
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(line)).toMatchObject({ before: false, backend: "webgpu", values: [1, 4, 9] });
  });
});
