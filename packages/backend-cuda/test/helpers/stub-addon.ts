import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { CudaNative } from "../../src/native/cuda-native.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const STUB_PATH = join(root, "build", "stub", "savepoint_cuda_stub.node");

/**
 * Compiles the addon's real C++ (native/*.cc) against test/native-stub/fake_cudart.cc instead of
 * the CUDA runtime, so the addon's own code (argument checks, registries, the host-callback to
 * JS-thread completion of async copies) runs on machines without a GPU. Needs g++ and the CUDA
 * headers (for the types). Returns the addon, or why it could not be built.
 */
export function buildStubAddon(): { native: CudaNative; path: string } | { reason: string } {
  const cudaInclude = join(process.env.CUDA_HOME || process.env.CUDA_PATH || "/usr/local/cuda", "include");
  if (!existsSync(join(cudaInclude, "cuda_runtime_api.h"))) return { reason: `no CUDA headers at ${cudaInclude} (install the CUDA toolkit or set CUDA_HOME)` };
  const nodeInclude = join(dirname(process.execPath), "..", "include", "node");
  if (!existsSync(join(nodeInclude, "node_api.h"))) return { reason: `no Node headers at ${nodeInclude}` };
  const addonApi = dirname(createRequire(join(root, "package.json")).resolve("node-addon-api"));
  const sources = [
    ...readdirSync(join(root, "native"))
      .filter((f) => f.endsWith(".cc"))
      .map((f) => join(root, "native", f)),
    join(root, "test", "native-stub", "fake_cudart.cc"),
  ];
  const headers = readdirSync(join(root, "native")).map((f) => join(root, "native", f));
  const fresh = existsSync(STUB_PATH) && [...sources, ...headers].every((f) => statSync(f).mtimeMs < statSync(STUB_PATH).mtimeMs);
  if (!fresh) {
    mkdirSync(dirname(STUB_PATH), { recursive: true });
    const flags = ["-std=c++17", "-O1", "-fPIC", "-shared", "-pthread", "-DNAPI_VERSION=8", "-DNAPI_CPP_EXCEPTIONS", "-DNODE_ADDON_API_DISABLE_DEPRECATED"];
    const includes = [`-I${nodeInclude}`, `-I${addonApi}`, `-I${cudaInclude}`];
    const r = spawnSync("g++", [...flags, ...includes, ...sources, "-o", STUB_PATH], { encoding: "utf8" });
    if (r.error || r.status !== 0) return { reason: `g++ failed: ${r.error?.message ?? r.stderr.slice(0, 2000)}` };
  }
  return { native: createRequire(import.meta.url)(STUB_PATH) as CudaNative, path: STUB_PATH };
}
