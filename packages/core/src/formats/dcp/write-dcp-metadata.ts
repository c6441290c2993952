import { torchDTypeName } from "../../dtype.js";
import { InvalidArgumentError } from "../../errors.js";
import type { CheckpointIO } from "../../io/checkpoint-io.js";
import { joinPath, resolveInside } from "../../io/paths.js";
import { asTuple, PyGlobal, PyObject } from "../../tree/python-values.js";
import { markNewObj } from "../pickle/newobj-mark.js";
import { pickle } from "../pickle/pickler.js";
import { DCP_METADATA_FILE, type DcpChunk, type DcpItem, type DcpMetadata, type DcpStorageLocation } from "./dcp-metadata.js";
import { checkDcpCover } from "./dcp-cover.js";
import { DCP_METADATA_CRC_FILE, metadataChecksum } from "./metadata-checksum.js";
import type { DcpWrittenItem } from "./write-dcp-shard.js";
import { writeBytesAtomically } from "../../io/write-atomically.js";

/** DCP's metadata version as torch 2.x writes it. */
export const DCP_VERSION = "1.0.0";

export interface DcpMetadataAssembly {
  /** Flattened key → its path (`planner_data`), in the order the items should be listed. */
  readonly plannerData: ReadonlyMap<string, readonly (string | number)[]>;
  /** `StorageMeta.checkpoint_id`: where the checkpoint is saved. */
  readonly checkpointId?: string;
  readonly saveId?: string;
}

/**
 * Merges what every rank wrote (`writeDcpShard`'s results, by rank) into one metadata model:
 * a tensor's chunks in rank order, each item listed once. The chunks of every tensor must cover it
 * exactly once; `encodeDcpMetadata` checks that by reading its own output back.
 */
export function assembleDcpMetadata(byRank: readonly (readonly DcpWrittenItem[])[], assembly: DcpMetadataAssembly): DcpMetadata {
  const found = new Map<string, DcpItem>();
  for (const written of byRank) {
    for (const w of written) {
      const storage = { file: w.file, offset: w.offset, length: w.length, transforms: [] };
      const prev = found.get(w.key);
      if (w.kind === "bytes") {
        if (prev) throw new InvalidArgumentError(`"${w.key}" was written twice (by two ranks); a value that is not a tensor chunk is written by one rank only.`, { subject: w.key });
        found.set(w.key, { kind: "bytes", key: w.key, storage });
        continue;
      }
      const chunk: DcpChunk = { offsets: w.offsets!, sizes: w.sizes!, storage };
      if (!prev) {
        found.set(w.key, { kind: "tensor", key: w.key, dtype: w.dtype!, size: w.size!, requiresGrad: false, chunks: [chunk] });
      } else if (prev.kind !== "tensor" || prev.dtype !== w.dtype || prev.size.join() !== w.size!.join()) {
        throw new InvalidArgumentError(`the ranks disagree about "${w.key}": one wrote a ${w.dtype} chunk of a tensor of shape (${w.size!.join(", ")}), another ${prev.kind === "tensor" ? `one of a ${prev.dtype} tensor of shape (${prev.size.join(", ")})` : "a value"}.`, { subject: w.key });
      } else {
        found.set(w.key, { ...prev, chunks: [...prev.chunks, chunk] });
      }
    }
  }
  // Listed in the plan's order; an item no rank wrote is a bug in the caller's plan.
  const items = new Map<string, DcpItem>();
  for (const key of assembly.plannerData.keys()) {
    const item = found.get(key);
    if (!item) throw new InvalidArgumentError(`"${key}" is in the checkpoint's plan but no rank wrote it.`, { subject: key });
    items.set(key, item);
  }
  for (const key of found.keys()) {
    if (!items.has(key)) throw new InvalidArgumentError(`"${key}" was written but is not in the checkpoint's plan (planner data), so a reader could not place it.`, { subject: key });
  }
  return { items, plannerData: assembly.plannerData, checkpointId: assembly.checkpointId, saveId: assembly.saveId, version: DCP_VERSION };
}

const MD = "torch.distributed.checkpoint.metadata";

/** A dataclass as Python pickles one: `cls.__new__(cls)` (NEWOBJ), then its fields (BUILD). */
function dataclass(name: string, state?: unknown, module = MD): PyObject {
  return markNewObj(new PyObject(module, name, [], state));
}

function torchSize(dims: readonly number[]): PyObject {
  return new PyObject("torch", "Size", [asTuple([...dims])]);
}

/** `pathlib.PosixPath(*parts)`, as pickle writes a path (its class and its parts). */
function posixPath(path: string): PyObject {
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  return new PyObject("pathlib", "PosixPath", path.startsWith("/") ? ["/", ...parts] : parts.length > 0 ? parts : ["."]);
}

/**
 * The `.metadata` pickle torch 2.x's DCP writes (the classes, fields and nesting of
 * `torch.distributed.checkpoint.metadata.Metadata`), at protocol 2, which torch's
 * `FileSystemReader` loads with `pickle.load`. Refuses a model savepoint's reader would refuse.
 */
export function encodeDcpMetadata(md: DcpMetadata, where = DCP_METADATA_FILE): Uint8Array {
  checkBeforeWriting(md, where);
  const stateDictMetadata: Record<string, unknown> = {};
  const storageData = new Map<PyObject, PyObject>();
  const storageInfo = (s: { file: string; offset: number; length: number }) =>
    dataclass("_StorageInfo", { relative_path: s.file, offset: s.offset, length: s.length }, "torch.distributed.checkpoint.filesystem");
  // One layout and memory format object shared by every TensorProperties, as torch's pickle memoises them.
  const layout = new PyObject("torch.serialization", "_get_layout", ["torch.strided"]);
  const contiguous = new PyObject(MD, "_MEM_FORMAT_ENCODING", [0]);
  for (const item of md.items.values()) {
    if (item.kind === "bytes") {
      stateDictMetadata[item.key] = dataclass("BytesStorageMetadata");
      // MetadataIndex(fqn) leaves `offset` at its class default, so it is not in the instance's fields.
      storageData.set(dataclass("MetadataIndex", { fqn: item.key, index: null }), storageInfo(item.storage));
      continue;
    }
    // TensorProperties pickles its fields as a tuple: (dtype, layout, requires_grad, memory_format, pin_memory).
    const properties = dataclass("TensorProperties", asTuple([new PyGlobal("torch", torchDTypeName(item.dtype)), layout, item.requiresGrad, contiguous, false]));
    const chunks = item.chunks.map((c, index) => {
      storageData.set(dataclass("MetadataIndex", { fqn: item.key, offset: torchSize(c.offsets), index }), storageInfo(c.storage));
      return dataclass("ChunkStorageMetadata", { offsets: torchSize(c.offsets), sizes: torchSize(c.sizes) });
    });
    stateDictMetadata[item.key] = dataclass("TensorStorageMetadata", { properties, size: torchSize(item.size), chunks });
  }
  // torch lists storage_data by rank, then in each file's order.
  const ordered = new Map([...storageData].sort(([, a], [, b]) => compareStorage(a, b)));
  const plannerData: Record<string, unknown> = {};
  for (const [k, path] of md.plannerData ?? []) plannerData[k] = asTuple([...path]);
  const metadata = dataclass("Metadata", {
    state_dict_metadata: stateDictMetadata,
    planner_data: plannerData,
    storage_data: ordered,
    storage_meta: dataclass("StorageMeta", { checkpoint_id: md.checkpointId === undefined ? null : posixPath(md.checkpointId), save_id: md.saveId ?? null, load_id: null, modules: [] }),
    version: md.version ?? DCP_VERSION,
  });
  return pickle(metadata, { where });
}

/**
 * What savepoint's reader checks on load, checked before writing, on the model itself: decoding
 * the pickle again for that cost as much as encoding it (a second per thousand tensors).
 */
function checkBeforeWriting(md: DcpMetadata, where: string): void {
  const invalid = (why: string) => new InvalidArgumentError(`${where}: the checkpoint's metadata would be invalid: ${why}.`, { subject: where });
  const checkStorage = (key: string, s: DcpStorageLocation) => {
    resolveInside(".", s.file, `${where}: "${key}"`);
    if (!Number.isSafeInteger(s.offset) || !Number.isSafeInteger(s.length) || s.offset < 0 || s.length < 0) throw invalid(`the storage of "${key}" in ${s.file} has the invalid range offset ${s.offset}, length ${s.length}`);
  };
  for (const item of md.items.values()) {
    if (item.kind === "bytes") checkStorage(item.key, item.storage);
    else {
      checkDcpCover(item.key, item.size, item.chunks, invalid);
      for (const c of item.chunks) checkStorage(item.key, c.storage);
    }
  }
}

function compareStorage(a: PyObject, b: PyObject): number {
  const x = a.state as { relative_path: string; offset: number };
  const y = b.state as { relative_path: string; offset: number };
  const rank = (p: string) => Number(/^__(\d+)_/.exec(p)?.[1] ?? Number.MAX_SAFE_INTEGER);
  return rank(x.relative_path) - rank(y.relative_path) || (x.relative_path < y.relative_path ? -1 : x.relative_path > y.relative_path ? 1 : 0) || x.offset - y.offset;
}

/**
 * Commits a DCP checkpoint: writes `.metadata` into `folder` (atomically, through the IO's
 * temporary-then-rename), preceded by `.metadata.crc32`, its checksum. Call it last, once every
 * rank's file is complete: until `.metadata` exists the folder is not a checkpoint.
 */
export async function writeDcpMetadata(md: DcpMetadata, options: { io: CheckpointIO; folder: string }): Promise<void> {
  const path = joinPath(options.folder, DCP_METADATA_FILE);
  const bytes = encodeDcpMetadata(md, path);
  // The checksum first: the metadata commits the folder, and must never be there without it.
  await writeBytesAtomically(options.io, joinPath(options.folder, DCP_METADATA_CRC_FILE), metadataChecksum(bytes));
  await writeBytesAtomically(options.io, path, bytes);
}
