import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import type { CudaNative } from "./cuda-native.js";
import { buildCommand, packageRoot } from "./package-root.js";

/** The addon, or why it could not be loaded. */
export type AddonLoad = { native: CudaNative; path: string } | { native?: undefined; path: string; reason: string };

let cached: AddonLoad | undefined;

/**
 * Loads `build/Release/savepoint_cuda.node` on first use (never at import, so the package imports
 * everywhere). `SAVEPOINT_CUDA_ADDON` may name another build of it.
 */
export function loadAddon(): AddonLoad {
  return (cached ??= load());
}

function load(): AddonLoad {
  let root: string;
  try {
    root = packageRoot();
  } catch (error) {
    return { path: "", reason: (error as Error).message };
  }
  const path = process.env.SAVEPOINT_CUDA_ADDON || join(root, "build", "Release", "savepoint_cuda.node");
  const build = buildCommand(root);
  if (!existsSync(path)) {
    const why = lastBuildFailure(root) ?? "it has not been built";
    return { path, reason: `the native addon ${path} is missing: ${why}. Build it with \`${build}\` (it needs the CUDA toolkit at CUDA_HOME or /usr/local/cuda)` };
  }
  try {
    const native = createRequire(import.meta.url)(path) as CudaNative;
    if (typeof native?.probe !== "function") throw new Error("it does not export probe()");
    return { native, path };
  } catch (error) {
    return { path, reason: `the native addon ${path} could not be loaded (${(error as Error).message}). Rebuild it with \`${build}\`` };
  }
}

/** The reason scripts/build-addon.mjs recorded for its last failed build, if it failed. */
function lastBuildFailure(root: string): string | undefined {
  try {
    const status = JSON.parse(readFileSync(join(root, "build", "savepoint-build.json"), "utf8")) as { ok?: boolean; reason?: string };
    return status.ok === false && status.reason ? status.reason : undefined;
  } catch {
    return undefined;
  }
}
