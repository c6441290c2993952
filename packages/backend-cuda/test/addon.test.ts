import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Fabric } from "@savepoint/core";
import { describe, expect, it } from "vitest";
import { cudaStatus } from "../src/availability.js";
import { cudaBackend } from "../src/cuda-backend.js";
import { CudaUnavailableError } from "../src/errors.js";
import type { CudaNative } from "../src/native/cuda-native.js";
import { CudaTensor } from "../src/tensor/cuda-tensor.js";
import "../src/index.js"; // registers "cuda"

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const addonPath = join(root, "build", "Release", "savepoint_cuda.node");
const CI = process.env.CI === "true" || process.env.CI === "1";

function buildRecord(): { ok?: boolean; reason?: string } {
  try {
    return JSON.parse(readFileSync(join(root, "build", "savepoint-build.json"), "utf8")) as { ok?: boolean; reason?: string };
  } catch {
    return {};
  }
}

describe("the savepoint_cuda addon (built against the CUDA toolkit)", () => {
  if (!existsSync(addonPath)) {
    const why = buildRecord().reason ?? "it was not built";
    const message = `the addon ${addonPath} is missing: ${why}. Install the CUDA toolkit (or set CUDA_HOME) and run \`npm run build:addon -w @savepoint/backend-cuda\``;
    // CI has the toolkit: there, a missing addon is a failure, never a skip.
    if (CI) it("is built", () => expect.fail(message));
    else it.skip(`skipped: ${message}`);
    return;
  }

  it("was built by the package's build step", () => {
    expect(buildRecord().ok).toBe(true);
  });

  const status = cudaStatus();

  it("loads and reports CUDA's own status for the device count", () => {
    expect(status.addonPath).toBe(addonPath);
    expect(status.cudaStatus).toMatch(/^cuda(Success|Error\w+)$/);
    expect(status.runtimeVersion).toBeGreaterThanOrEqual(11000);
    if (status.available) expect(status.deviceCount).toBeGreaterThan(0);
  });

  if (status.available) {
    it.skip("unavailable-path checks skipped: this machine has a usable GPU (the GPU suite runs instead)", () => {});
    return;
  }

  it("is unavailable here with CUDA's error name and text, initialising the device count", () => {
    expect(status.deviceCount).toBe(0);
    // e.g. unavailable: cudaGetDeviceCount returned cudaErrorInsufficientDriver ("CUDA driver version is insufficient for CUDA runtime version"): ...
    expect(status.reason).toMatch(/^unavailable: cudaGetDeviceCount returned cudaError\w+ \("[^"]+"\)/);
    expect(status.reason).toContain(status.cudaStatus!);
  });

  it("throws a clear, typed error when used", () => {
    for (const use of [() => cudaBackend(), () => CudaTensor.fromValues("float32", [2], [1, 2]), () => CudaTensor.empty("float32", [2]), () => new Fabric({ backend: "cuda" })]) {
      let error: unknown;
      try {
        use();
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(CudaUnavailableError);
      expect((error as Error).message).toMatch(/^\[savepoint\] .* needs CUDA, which is unavailable: cudaGetDeviceCount returned cudaError\w+/);
      expect((error as Error).message).toContain("isAvailable()");
    }
  });

  it("native calls fail with CUDA's error as a JavaScript exception, never a crash", () => {
    const native = createRequire(import.meta.url)(addonPath) as CudaNative;
    const code = status.cudaStatus;
    expect(() => native.malloc(0, 16)).toThrow(expect.objectContaining({ code, message: expect.stringMatching(/^cudaSetDevice failed: cudaError\w+ \(/) }));
    expect(() => native.hostAlloc(4096)).toThrow(expect.objectContaining({ code }));
    expect(() => native.streamCreate(0)).toThrow(expect.objectContaining({ code }));
    // Arguments are checked before CUDA sees them.
    expect(() => native.free(1234n)).toThrow(/not a live allocation/);
    expect(() => native.copyToHostSync(0, 1234n, 0, new Uint8Array(4))).toThrow(/not a live allocation/);
    expect(() => native.copyToHostAsync(0, 99n, 1234n, 0, new Uint8Array(4))).toThrow(/not a live stream/);
    expect(() => native.malloc(0, -1)).toThrow(RangeError);
    expect(() => native.free(5 as unknown as bigint)).toThrow(TypeError);
    expect(() => native.copyToDeviceSync(0, [1, 2] as unknown as Uint8Array, 1n, 0)).toThrow(/must be a Uint8Array/);
  });
});

describe("the built package (dist), loaded the way users load it", () => {
  const dist = join(root, "dist");
  if (!existsSync(join(dist, "index.js"))) {
    if (CI) it("is built", () => expect.fail(`${dist} is missing; \`npm test\` builds it first (npm run build)`));
    else it.skip("skipped: dist/ is not built (run npm run build -w @savepoint/backend-cuda)");
    return;
  }
  const probe = "console.log(JSON.stringify({ available: m.isAvailable(), reason: m.unavailableReason() ?? null }))";

  it("imports from ESM and CommonJS without loading the addon at import time, and both agree", () => {
    const esm = execFileSync(process.execPath, ["--input-type=module", "-e", `import * as m from ${JSON.stringify(join(dist, "index.js"))}; ${probe}`], { encoding: "utf8" });
    const cjs = execFileSync(process.execPath, ["-e", `const m = require(${JSON.stringify(join(dist, "index.cjs"))}); ${probe}`], { encoding: "utf8" });
    expect(JSON.parse(esm)).toEqual(JSON.parse(cjs));
    const lazy = execFileSync(process.execPath, ["-e", `require(${JSON.stringify(join(dist, "index.cjs"))}); console.log(Object.keys(require.cache).some((k) => k.endsWith(".node")))`], { encoding: "utf8" });
    expect(lazy.trim()).toBe("false");
  });

  it("without the addon, reports it unavailable with the exact command that builds it", () => {
    const out = execFileSync(process.execPath, ["-e", `const m = require(${JSON.stringify(join(dist, "index.cjs"))}); ${probe}`], {
      encoding: "utf8",
      env: { ...process.env, SAVEPOINT_CUDA_ADDON: join(root, "build", "no-such-addon.node") },
    });
    const { available, reason } = JSON.parse(out) as { available: boolean; reason: string };
    expect(available).toBe(false);
    expect(reason).toMatch(/^unavailable: the native addon .*no-such-addon\.node is missing/);
    expect(reason).toContain("`npm run build:addon -w @savepoint/backend-cuda`");
  });
});

describe("scripts/build-addon.mjs", () => {
  const script = join(root, "scripts", "build-addon.mjs");
  const run = (args: string[], env: Record<string, string> = {}) => spawnSync(process.execPath, [script, ...args], { encoding: "utf8", env: { ...process.env, ...env } });

  it("tolerates a missing toolkit when asked to (npm install), and says how to fix it", () => {
    const tolerant = run(["--dry-run", "--tolerant"], { CUDA_HOME: "/nonexistent/cuda" });
    expect(tolerant.status).toBe(0);
    expect(tolerant.stdout).toContain("no CUDA toolkit found: looked at /nonexistent/cuda");
    expect(tolerant.stdout).toContain("npm run build:addon -w @savepoint/backend-cuda");
    expect(run(["--dry-run"], { CUDA_HOME: "/nonexistent/cuda" }).status).toBe(1);
  });

  it("rejects unknown options", () => {
    const r = run(["--bogus"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown option --bogus/);
  });

  it.runIf(existsSync(join(process.env.CUDA_HOME || "/usr/local/cuda", "include", "cuda_runtime_api.h")))("finds the toolkit and node-gyp (dry run)", () => {
    const r = run(["--dry-run", "--force"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/would run: CUDA_HOME=\S+ SAVEPOINT_CUDA_LIBDIR=\S+ .*node-gyp\.js rebuild/);
  });
});
