import { isDType, type DType } from "../../dtype.js";
import { CorruptCheckpointError } from "../../errors.js";
import { resolveInside } from "../../io/paths.js";
import { isPlainObject } from "../../tree/plain.js";
import { PyObject } from "../../tree/python-values.js";
import type { SafetyMode } from "../format.js";
import { unpickle } from "../pickle/unpickler.js";
import { TorchDType } from "../torch/torch-globals.js";
import { checkDcpCover } from "./dcp-cover.js";
import { dcpGlobals } from "./dcp-globals.js";
import type { DcpChunk, DcpItem, DcpMetadata, DcpStorageLocation } from "./dcp-metadata.js";

export interface DcpMetadataReadOptions {
  /** The `.metadata` file, for messages. */
  readonly where: string;
  /** The checkpoint folder: every file the metadata names must lie inside it. */
  readonly folder: string;
  readonly safe: SafetyMode;
}

const MD = "torch.distributed.checkpoint.metadata";
const METADATA = [`${MD}.Metadata`, "megatron.core.dist_checkpointing.strategies.torch.MCoreMetadata"];

/**
 * Decodes a DCP `.metadata` pickle with an allow-list of DCP's classes (torch's own reader uses an
 * unrestricted `pickle.load`) and validates it into a `DcpMetadata`: every tensor's chunks lie in
 * it and cover it exactly once, every item has a storage location, and no location names a file
 * outside the checkpoint folder.
 */
export function readDcpMetadata(bytes: Uint8Array, options: DcpMetadataReadOptions): DcpMetadata {
  const { where } = options;
  const corrupt = (why: string) => new CorruptCheckpointError(`${where}: ${why}. The checkpoint's metadata is damaged.`, { subject: where });
  const root = unpickle(bytes, { where, safe: options.safe, globals: dcpGlobals(where) }).value;
  const md = fieldsOf(root, METADATA, "the metadata", corrupt);
  const sdm = md.state_dict_metadata;
  if (!isDict(sdm)) throw corrupt("state_dict_metadata is not a dict");

  // storage_data: MetadataIndex(fqn, offset, index) → _StorageInfo(relative_path, offset, length).
  const stored = new Map<string, { offsets: readonly number[] | null; location: DcpStorageLocation }[]>();
  if (!(md.storage_data instanceof Map) && !isDict(md.storage_data)) throw corrupt("storage_data is not a dict");
  for (const [index, info] of dictEntries(md.storage_data)) {
    const idx = fieldsOf(index, [`${MD}.MetadataIndex`], "a storage_data key", corrupt);
    if (typeof idx.fqn !== "string") throw corrupt("a storage_data key has no fqn");
    const key = idx.fqn;
    const offsets = idx.offset === undefined || idx.offset === null ? null : ints(idx.offset, `the storage offset of "${key}"`, corrupt);
    const location = storageLocation(info, key, options, corrupt);
    const list = stored.get(key) ?? [];
    list.push({ offsets, location });
    stored.set(key, list);
  }
  const locate = (key: string, offsets: readonly number[] | null): DcpStorageLocation => {
    const list = stored.get(key) ?? [];
    const hit = offsets === null ? (list.find((s) => s.offsets === null) ?? (list.length === 1 ? list[0] : undefined)) : list.find((s) => s.offsets !== null && sameInts(s.offsets, offsets));
    if (!hit) throw corrupt(`"${key}"${offsets ? ` (chunk at offsets (${offsets.join(", ")}))` : ""} has no entry in storage_data`);
    return hit.location;
  };

  const items = new Map<string, DcpItem>();
  for (const [rawKey, entry] of dictEntries(sdm)) {
    const key = String(rawKey);
    if (!(entry instanceof PyObject)) throw corrupt(`"${key}" is described by something other than a DCP storage metadata object`);
    if (`${entry.module}.${entry.name}` === `${MD}.BytesStorageMetadata`) {
      fieldsOf(entry, [`${MD}.BytesStorageMetadata`], `"${key}"`, corrupt);
      items.set(key, { kind: "bytes", key, storage: locate(key, null) });
      continue;
    }
    const t = fieldsOf(entry, [`${MD}.TensorStorageMetadata`], `"${key}"`, corrupt);
    const size = ints(t.size, `the size of "${key}"`, corrupt);
    const { dtype, requiresGrad } = tensorProperties(t.properties, key, corrupt);
    if (!Array.isArray(t.chunks)) throw corrupt(`"${key}" has no list of chunks`);
    const chunks: DcpChunk[] = t.chunks.map((c) => {
      const f = fieldsOf(c, [`${MD}.ChunkStorageMetadata`], `a chunk of "${key}"`, corrupt);
      const offsets = ints(f.offsets, `a chunk offset of "${key}"`, corrupt);
      const sizes = ints(f.sizes, `a chunk size of "${key}"`, corrupt);
      return { offsets, sizes, storage: locate(key, offsets) };
    });
    checkDcpCover(key, size, chunks, corrupt);
    items.set(key, { kind: "tensor", key, dtype, size, requiresGrad, chunks });
  }

  let plannerData: Map<string, (string | number)[]> | undefined;
  if (md.planner_data !== undefined && md.planner_data !== null) {
    if (!isDict(md.planner_data)) throw corrupt("planner_data is not a dict");
    plannerData = new Map();
    for (const [k, path] of dictEntries(md.planner_data)) {
      if (!Array.isArray(path) || path.length === 0 || !path.every((p) => typeof p === "string" || (Number.isSafeInteger(p) && (p as number) >= 0))) {
        throw corrupt(`planner_data for "${String(k)}" is not a tuple of names and indices`);
      }
      plannerData.set(String(k), path as (string | number)[]);
    }
  }
  const meta = md.storage_meta instanceof PyObject ? fieldsOf(md.storage_meta, [`${MD}.StorageMeta`], "storage_meta", corrupt) : {};
  return {
    items,
    plannerData,
    checkpointId: pathText(meta.checkpoint_id),
    saveId: typeof meta.save_id === "string" ? meta.save_id : undefined,
    version: typeof md.version === "string" ? md.version : undefined,
  };
}

type Corrupt = (why: string) => CorruptCheckpointError;

function isDict(v: unknown): v is Record<string, unknown> | Map<unknown, unknown> {
  return v instanceof Map || isPlainObject(v);
}

function dictEntries(v: Record<string, unknown> | Map<unknown, unknown>): [unknown, unknown][] {
  return v instanceof Map ? [...v.entries()] : Object.entries(v);
}

/** The attributes of an inert DCP object: its BUILD state (a dict, or dataclass slots `(None, dict)`). */
function fieldsOf(v: unknown, classes: readonly string[], what: string, corrupt: Corrupt): Record<string, unknown> {
  if (!(v instanceof PyObject) || !classes.includes(`${v.module}.${v.name}`)) throw corrupt(`${what} is not a ${classes.join(" / ")}`);
  let state = v.state;
  if (Array.isArray(state) && state.length === 2 && (state[0] === null || isDict(state[0])) && isDict(state[1])) {
    state = { ...toRecord(state[0] ?? {}), ...toRecord(state[1]) };
  }
  if (state === undefined || state === null) return {};
  if (!isDict(state)) throw corrupt(`${what} has a state that is not a dict`);
  return toRecord(state);
}

function toRecord(v: Record<string, unknown> | Map<unknown, unknown>): Record<string, unknown> {
  if (!(v instanceof Map)) return v;
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [k, x] of v) if (typeof k === "string") out[k] = x;
  return out;
}

function ints(v: unknown, what: string, corrupt: Corrupt): number[] {
  if (!Array.isArray(v) || !v.every((x) => Number.isSafeInteger(x) && (x as number) >= 0)) throw corrupt(`${what} is not a tuple of non-negative integers`);
  return v as number[];
}

function sameInts(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** TensorProperties pickles as the tuple `(dtype, layout, requires_grad, memory_format, pin_memory)` (older torch: a dict). */
function tensorProperties(v: unknown, key: string, corrupt: Corrupt): { dtype: DType; requiresGrad: boolean } {
  if (!(v instanceof PyObject) || `${v.module}.${v.name}` !== `${MD}.TensorProperties`) throw corrupt(`"${key}" has no TensorProperties`);
  const s = v.state;
  const dtype = Array.isArray(s) ? s[0] : isDict(s) ? toRecord(s).dtype : undefined;
  const grad = Array.isArray(s) ? s[2] : isDict(s) ? toRecord(s).requires_grad : undefined;
  if (!(dtype instanceof TorchDType) || !isDType(dtype.dtype)) throw corrupt(`"${key}" has no torch dtype`);
  return { dtype: dtype.dtype, requiresGrad: grad === true };
}

function storageLocation(v: unknown, key: string, options: DcpMetadataReadOptions, corrupt: Corrupt): DcpStorageLocation {
  const f = fieldsOf(v, ["torch.distributed.checkpoint.filesystem._StorageInfo"], `the storage of "${key}"`, corrupt);
  const file = f.relative_path;
  if (typeof file !== "string") throw corrupt(`the storage of "${key}" names no file`);
  // Refuses ../, absolute paths and the like, naming the key and the file.
  resolveInside(options.folder, file, `${options.where}: "${key}"`);
  const { offset, length } = f;
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || (offset as number) < 0 || (length as number) < 0) {
    throw corrupt(`the storage of "${key}" in ${file} has the invalid range offset ${String(offset)}, length ${String(length)}`);
  }
  const td = f.transform_descriptors;
  if (td !== undefined && td !== null && !(Array.isArray(td) && td.every((t) => typeof t === "string"))) throw corrupt(`the storage of "${key}" has malformed transform descriptors`);
  return { file, offset: offset as number, length: length as number, transforms: (td as string[] | null | undefined) ?? [] };
}

/** `pathlib.PosixPath("/a", "b")` (args are its parts) or a plain str. */
function pathText(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (v instanceof PyObject && v.args.every((a) => typeof a === "string")) {
    const parts = v.args as string[];
    return parts.length === 0 ? "." : parts.reduce((acc, p) => (acc === "" ? p : acc.endsWith("/") ? acc + p : `${acc}/${p}`), "");
  }
  return undefined;
}
