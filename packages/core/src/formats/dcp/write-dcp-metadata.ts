import { InvalidArgumentError } from "../../errors.js";
import type { CheckpointIO } from "../../io/checkpoint-io.js";
import { joinPath, resolveInside } from "../../io/paths.js";
import { DCP_METADATA_FILE, type DcpChunk, type DcpItem, type DcpMetadata, type DcpStorageLocation } from "./dcp-metadata.js";
import { checkDcpCover } from "./dcp-cover.js";
import { pickleDcpMetadata } from "./dcp-metadata-pickle.js";
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

/**
 * The `.metadata` pickle torch 2.x's DCP writes (see `pickleDcpMetadata`), which torch's
 * `FileSystemReader` loads with `pickle.load`. Refuses a model savepoint's reader would refuse.
 */
export function encodeDcpMetadata(md: DcpMetadata, where = DCP_METADATA_FILE): Uint8Array {
  checkBeforeWriting(md, where);
  return pickleDcpMetadata(md, where);
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
