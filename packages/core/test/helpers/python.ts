import { execFileSync, spawnSync } from "node:child_process";

/** Debian's python3 with python3-torch; CI installs it (.ci/run). */
export const PYTHON = process.env.SAVEPOINT_PYTHON ?? "/usr/bin/python3";

let probed: string | null | undefined;

/** Why real PyTorch cannot run here, or null when it can. */
export function torchMissing(): string | null {
  if (probed === undefined) {
    const r = spawnSync(PYTHON, ["-c", "import torch, numpy"], { encoding: "utf8" });
    probed = r.status === 0 ? null : `${PYTHON} cannot import torch/numpy (install Debian's python3-torch): ${r.stderr?.trim() ?? r.error}`;
  }
  return probed;
}

/**
 * Whether interop tests should be skipped. Under CI=true a missing torch fails the suite instead
 * (DESIGN.md §7), so this returns false there and the test itself reports the missing package.
 */
export function skipWithoutTorch(): boolean {
  const why = torchMissing();
  if (why === null) return false;
  if (process.env.CI === "true") throw new Error(`[test setup] ${why}`);
  console.warn(`skipping PyTorch interop tests: ${why}`);
  return true;
}

/** Runs a Python script (source text) with args; returns stdout. Throws with stderr on failure. */
export function runPython(script: string, args: string[] = [], input?: string | Uint8Array): string {
  try {
    return execFileSync(PYTHON, ["-c", script, ...args], { encoding: "utf8", input, maxBuffer: 1 << 28 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`python failed: ${e.stderr ?? e.message}`);
  }
}
