import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

// What of scripts/gpu-check.sh and scripts/gpu-bench.mjs can run without a GPU: argument
// handling, the dry run, and the whole benchmark against the host-memory stand-in for the addon
// (its numbers mean nothing; it proves the script runs to the end and checks what it loaded).
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const check = join(root, "scripts", "gpu-check.sh");
const bench = join(root, "scripts", "gpu-bench.mjs");
const emulatedAddon = join(root, "test", "helpers", "emulated-addon.mjs");
const built = existsSync(join(root, "dist", "index.js"));
const CI = process.env.CI === "true" || process.env.CI === "1";
const work = mkdtempSync(join(tmpdir(), "savepoint-gpu-scripts-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const run = (cmd: string, args: string[], env: Record<string, string> = {}) =>
  spawnSync(cmd, args, { encoding: "utf8", env: { ...process.env, ...env }, timeout: 120_000 });

describe("scripts/gpu-check.sh", () => {
  it("parses its arguments", () => {
    expect(run("bash", ["-n", check]).status).toBe(0);
    const help = run("bash", [check, "--help"]);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain("--dry-run");
    expect(run("bash", [check, "--bogus"]).status).toBe(2);
    expect(run("bash", [check, "--bytes"]).stderr).toContain("--bytes needs a value");
  });

  it.runIf(built || CI)("dry run: checks the benchmark's arguments, build and disk without a GPU", () => {
    const r = run("bash", [check, "--dry-run", "--skip-build", "--skip-tests", "--bytes", "64MiB", "--dir", work]);
    expect(r.stderr + r.stdout).toContain("dry run: arguments, build output and disk checked");
    expect(r.stdout).toContain("gpu-check passed (dry run: nothing ran on a GPU)");
    expect(r.status).toBe(0);
  });
});

describe("scripts/gpu-bench.mjs", () => {
  it("rejects bad arguments with its usage", () => {
    for (const args of [["--bytes", "4XB"], ["--tensors", "0"], ["--frobnicate"], ["--bytes", "4", "--tensors", "2"]]) {
      const r = run(process.execPath, [bench, ...args]);
      expect(r.status, args.join(" ")).toBe(2);
      expect(r.stderr).toContain("usage: node scripts/gpu-bench.mjs");
    }
  });

  it.runIf(built || CI)("runs end to end against the host-memory stand-in for the addon", () => {
    const json = join(work, "bench.json");
    const r = run(
      process.execPath,
      [bench, "--bytes", "16MiB", "--tensors", "4", "--chunk-bytes", "1MiB", "--staging-buffer-bytes", "1MiB", "--dir", work, "--json", json, "--no-targets", "--warm-reads"],
      { SAVEPOINT_CUDA_ADDON: emulatedAddon },
    );
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/D2H staging .* x raw D2H/);
    expect(r.stdout).toContain("loaded contents match what was saved");
    const results = JSON.parse(readFileSync(json, "utf8")) as { verified: boolean; GBps: Record<string, number>; ratios: Record<string, number> };
    expect(results.verified).toBe(true);
    expect(Object.keys(results.GBps).sort()).toEqual(["load", "rawD2H", "rawDiskRead", "rawDiskWrite", "rawH2D", "save", "staging"]);
    for (const v of [...Object.values(results.GBps), ...Object.values(results.ratios)]) expect(v).toBeGreaterThan(0);
  });
});
