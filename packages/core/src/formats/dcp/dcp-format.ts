import { CheckpointNotFoundError, CorruptCheckpointError } from "../../errors.js";
import type { ByteSource } from "../../io/byte-source.js";
import { joinPath } from "../../io/paths.js";
import { rangeSource } from "../../io/range-source.js";
import { isPlainObject, setOwn } from "../../tree/plain.js";
import type { Format, FormatProbe, FormatReadContext } from "../format.js";
import { readTorchZip } from "../torch/read-torch-zip.js";
import { assembledTensor } from "./assembled-tensor.js";
import { readBytesItem } from "./bytes-item.js";
import { chunkBytes } from "./dcp-chunk.js";
import { DCP_METADATA_FILE, LIGHTNING_META_FILE, type DcpItem, type DcpStorageLocation } from "./dcp-metadata.js";
import { nestKeys } from "./nest-keys.js";
import { readDcpMetadata } from "./read-dcp-metadata.js";
import { checkMetadataChecksum, DCP_METADATA_CRC_FILE } from "./metadata-checksum.js";

/**
 * A torch.distributed.checkpoint directory, as Lightning's FSDP/ModelParallel strategies and
 * Megatron-Core write it: `.metadata` (which commits the checkpoint), the ranks' `.distcp` files
 * and Lightning's `meta.pt`. Read only for now. Tensors come back whole, reassembled lazily from
 * the ranks' chunks; the tree nests as the writer's state did.
 */
export const dcpFormat: Format = {
  name: "dcp",
  extensions: [],

  detect(probe: FormatProbe): boolean {
    return probe.info.kind === "directory" && !!probe.entries?.includes(DCP_METADATA_FILE);
  },

  async read(ctx: FormatReadContext): Promise<unknown> {
    const where = joinPath(ctx.path, DCP_METADATA_FILE);
    const mdSource = await ctx.open(DCP_METADATA_FILE);
    const mdBytes = await mdSource.read(0, mdSource.size);
    const ours = ctx.verify && (await checkMetadataChecksum(mdBytes, where, () => ctx.open(DCP_METADATA_CRC_FILE)));
    const md = readDcpMetadata(mdBytes, { where, folder: ctx.path, safe: ctx.safe });

    // Every file is opened and every range checked against its size now, so a missing or truncated
    // file fails at load rather than at the first touch of a tensor. A chunk's length is checked
    // against its shape only at its first read (dcp-chunk.ts): telling a torch-zip chunk from raw
    // bytes takes a read of the chunk itself, one per chunk, too many to do for every load.
    const files = new Map<string, Promise<ByteSource>>();
    const open = async (key: string, loc: DcpStorageLocation): Promise<ByteSource> => {
      let p = files.get(loc.file);
      if (!p) {
        p = openNamed(ctx, loc.file, key, where);
        files.set(loc.file, p);
      }
      const source = await p;
      if (loc.offset + loc.length > source.size) {
        throw new CorruptCheckpointError(`${where}: "${key}" is stored at bytes [${loc.offset}, ${loc.offset + loc.length}) of ${loc.file}, which has ${source.size} bytes. The checkpoint is truncated or damaged.`, { subject: joinPath(ctx.path, loc.file) });
      }
      return source;
    };

    const options = { safe: ctx.safe, verify: ctx.verify };
    const values = await Promise.all(
      [...md.items.values()].map(async (item: DcpItem): Promise<[readonly (string | number)[], unknown]> => {
        const path = md.plannerData?.get(item.key) ?? splitFirstDot(item.key);
        if (item.kind === "bytes") {
          const source = await open(item.key, item.storage);
          const segment = rangeSource(source, item.storage.offset, item.storage.length, `${source.name}[${item.storage.offset}:${item.storage.offset + item.storage.length}] ("${item.key}")`);
          return [path, await readBytesItem(segment, { where: segment.name, ...options, zipOnly: ours })];
        }
        const chunks = await Promise.all(
          item.chunks.map(async (c) => ({ offsets: c.offsets, sizes: c.sizes, read: chunkBytes(await open(item.key, c.storage), c, item.dtype, item.key, options) })),
        );
        return [path, assembledTensor(item.dtype, item.size, chunks, `${ctx.path}:${item.key}`)];
      }),
    );
    const tree = nestKeys(values, where, md.items.size);

    const metaPath = joinPath(ctx.path, LIGHTNING_META_FILE);
    if ((await ctx.io.stat(metaPath))?.kind === "file") {
      const meta = await readTorchZip(await ctx.open(LIGHTNING_META_FILE), { where: metaPath, ...options });
      if (!isPlainObject(meta)) throw new CorruptCheckpointError(`${metaPath} holds no dict of values; Lightning writes one there.`, { subject: metaPath });
      for (const [k, v] of Object.entries(meta)) {
        if (Object.hasOwn(tree, k)) throw new CorruptCheckpointError(`${metaPath} and ${where} both hold "${k}"; the checkpoint is inconsistent.`, { subject: metaPath });
        setOwn(tree, k, v);
      }
    }
    return tree;
  },
};

/** DCP without planner data: the first dot separates the top-level name (`model.fc1.weight` → model, fc1.weight). */
function splitFirstDot(key: string): string[] {
  const dot = key.indexOf(".");
  return dot <= 0 || dot === key.length - 1 ? [key] : [key.slice(0, dot), key.slice(dot + 1)];
}

async function openNamed(ctx: FormatReadContext, file: string, key: string, where: string): Promise<ByteSource> {
  try {
    return await ctx.open(file);
  } catch (err) {
    if (!(err instanceof CheckpointNotFoundError)) throw err;
    throw new CheckpointNotFoundError(`${where}: "${key}" is stored in ${file}, which is missing from ${ctx.path}. Copy the whole checkpoint folder again.`, { cause: err, subject: joinPath(ctx.path, file) });
  }
}
