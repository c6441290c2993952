import { dcpFormat } from "../formats/dcp/dcp-format.js";
import { torchZipFormat } from "../formats/torch/torch-zip-format.js";
import { resolveInside } from "../io/paths.js";
import { safetensorsFormat } from "../formats/safetensors/safetensors-format.js";
import { MemoryIO } from "../io/memory-io.js";
import { SourcePool } from "../io/source-pool.js";
import { isStoredTensor } from "../tensor/stored-tensor.js";
import { HostTensor } from "../tensor/stored-tensor.js";
import { isPlainObject } from "../tree/plain.js";

/**
 * Decodes checkpoint bytes straight from storage with the format readers alone (no strategy, no
 * backend, no adapter), materialising every tensor: the independent view conformance suites
 * compare against.
 */
export async function decodeCheckpointBytes(bytes: Uint8Array, name = "checkpoint.pt"): Promise<unknown> {
  const io = new MemoryIO();
  io.files.set(name, bytes);
  const pool = new SourcePool(io);
  const format = name.endsWith(".safetensors") ? safetensorsFormat : torchZipFormat;
  return pool.hold(async () => {
    const tree = await format.read!({ io, path: name, info: { kind: "file", size: bytes.byteLength }, open: () => pool.get(name), safe: "strict", verify: true });
    return materialize(tree);
  });
}

/**
 * Decodes a directory checkpoint (DCP: `.metadata`, the ranks' `.distcp` files, `meta.pt`) from its
 * files' bytes, keyed by name inside the folder, with the DCP reader alone, materialising every
 * tensor.
 */
export async function decodeCheckpointDirectory(files: ReadonlyMap<string, Uint8Array>): Promise<unknown> {
  const io = new MemoryIO();
  for (const [name, bytes] of files) io.files.set(`ckpt/${name}`, bytes);
  const pool = new SourcePool(io);
  return pool.hold(async () => {
    const tree = await dcpFormat.read!({ io, path: "ckpt", info: { kind: "directory", size: 0 }, open: (rel) => pool.get(rel === undefined ? "ckpt" : resolveInside("ckpt", rel, "ckpt")), safe: "strict", verify: true });
    return materialize(tree);
  });
}

async function materialize(v: unknown): Promise<unknown> {
  if (isStoredTensor(v)) return new HostTensor(v.dtype, v.shape, await v.bytes());
  if (Array.isArray(v)) return Promise.all(v.map(materialize));
  if (isPlainObject(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = await materialize(x);
    return out;
  }
  return v;
}
