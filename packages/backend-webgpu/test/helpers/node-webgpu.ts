import { setupNodeWebGpu, type NodeAdapterChoice, type NodeWebGpu } from "../../src/node.js";

let probed: Promise<NodeWebGpu | string> | undefined;

/**
 * Real WebGPU for this test file (Dawn through the `webgpu` package), or null when there is none.
 * Under CI=true a missing adapter fails instead (DESIGN.md §7); elsewhere the tests skip with a
 * message saying what to install. Without `adapter`, SAVEPOINT_WEBGPU_ADAPTER or "auto" decides.
 */
export async function nodeWebGpuOrSkip(adapter?: NodeAdapterChoice): Promise<NodeWebGpu | null> {
  probed ??= setupNodeWebGpu({ adapter }).catch((err: unknown) => (err as Error).message);
  const r = await probed;
  if (typeof r !== "string") return r;
  if (process.env.CI === "true") throw new Error(`[test setup] WebGPU in Node is required in CI: ${r}`);
  console.warn(`skipping WebGPU tests: ${r}`);
  return null;
}
