import { NodeFileIO } from "../../src/io/node-fs-io.js";
import type { CheckpointIO } from "../../src/io/checkpoint-io.js";
import { FormatRegistry } from "../../src/formats/format-registry.js";
import { withCheckpoint } from "../../src/strategies/checkpoint-files.js";
import type { StrategyContext } from "../../src/strategies/strategy.js";
import { tfjsManifestFormat } from "../../src/formats/tfjs/tfjs-manifest-format.js";
import { Fabric } from "../../src/index.js";
import type { MemoryIO } from "../../src/io/memory-io.js";

/** A Fabric on `io` (tfjs manifests are among the default formats). */
export function tfjsFabric(io?: CheckpointIO): Fabric {
  return new Fabric({ io });
}

/** Calls the format alone, through the same context `withCheckpoint` gives every format. */
export async function readDirect(path: string, io: CheckpointIO = new NodeFileIO()): Promise<unknown> {
  const ctx = { io, formats: new FormatRegistry([tfjsManifestFormat]), safe: "placeholder", verify: true } as unknown as StrategyContext;
  return withCheckpoint(path, ctx, async (tree) => tree);
}

/** Puts a model.json with `manifest` and the given shard files into `dir` of a MemoryIO. */
export function putModel(io: MemoryIO, dir: string, manifest: unknown, shards: Record<string, Uint8Array>): string {
  const json = typeof manifest === "string" ? manifest : JSON.stringify({ format: "graph-model", weightsManifest: manifest });
  io.files.set(`${dir}/model.json`, new TextEncoder().encode(json));
  for (const [name, bytes] of Object.entries(shards)) io.files.set(`${dir}/${name}`, bytes);
  return `${dir}/model.json`;
}

/** Deterministic pseudo-random bytes. */
export function noise(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = s & 0xff;
  }
  return out;
}

/** Concatenates byte arrays. */
export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
