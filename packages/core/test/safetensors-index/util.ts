import { defaultFormats } from "../../src/formats/default-formats.js";
import { safetensorsIndexFormat } from "../../src/formats/safetensors-index/safetensors-index-format.js";
import { writeSafetensors } from "../../src/formats/safetensors/writer.js";
import type { Format } from "../../src/formats/format.js";
import { Fabric, HostTensor, type CheckpointIO, type MemoryIO, type StoredTensor } from "../../src/index.js";

/** A Fabric that reads and writes sharded safetensors (not in the defaults yet). */
export function indexFabric(io?: CheckpointIO, format: Format = safetensorsIndexFormat): Fabric {
  return new Fabric({ io, formats: [format, ...defaultFormats().filter((f) => f.name !== format.name)] });
}

/** Float64 sum of finite values and count of the others, as expected.json records them. */
export async function sumOf(t: StoredTensor): Promise<{ sum: number; nonfinite: number }> {
  const values = (await t.data()) as ArrayLike<number | bigint>;
  let sum = 0;
  let nonfinite = 0;
  for (let i = 0; i < values.length; i++) {
    const v = Number(values[i]!);
    if (Number.isFinite(v)) sum += v;
    else nonfinite++;
  }
  return { sum, nonfinite };
}

/** Writes a safetensors shard of the given float32 tensors (name → values) into a MemoryIO. */
export async function putShard(io: MemoryIO, path: string, tensors: Record<string, number[]>): Promise<void> {
  const out = await io.openWrite(path);
  await writeSafetensors(out, Object.entries(tensors).map(([name, v]) => ({ name, tensor: HostTensor.fromValues("float32", [v.length], v) })), { format: "pt" });
  await out.commit();
}

/** Puts an index with `weightMap` at `path`. */
export function putIndex(io: MemoryIO, path: string, weightMap: Record<string, string> | string): void {
  const text = typeof weightMap === "string" ? weightMap : JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap });
  io.files.set(path, new TextEncoder().encode(text));
}

/** Deterministic pseudo-random bytes; bool gets 0/1. */
export function randomBytes(n: number, seed: number, bool = false): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = bool ? s & 1 : s & 0xff;
  }
  return out;
}
