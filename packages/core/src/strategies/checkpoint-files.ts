import { CheckpointNotFoundError, CorruptCheckpointError } from "../errors.js";
import { interruptedDcpSwap } from "../formats/dcp/dcp-folder-commit.js";
import type { Format, FormatProbe, FormatReadContext } from "../formats/format.js";
import type { CheckpointIO } from "../io/checkpoint-io.js";
import { dirname, resolveInside } from "../io/paths.js";
import { SourcePool } from "../io/source-pool.js";
import type { StrategyContext } from "./strategy.js";

/**
 * Encodes a converted, writable tree with the format chosen for `path`.
 */
export async function writeCheckpoint(tree: unknown, path: string, ctx: StrategyContext, formatName?: string): Promise<void> {
  const format = ctx.formats.forWrite(path, formatName);
  await format.write!(tree, { io: ctx.io, path, chunkBytes: ctx.chunkBytes });
}

/**
 * Reads the checkpoint at `path` lazily and runs `use` on it while its files stay open; tensors
 * touched after `use` returns reopen their file per read.
 */
export async function withCheckpoint<T>(requested: string, ctx: StrategyContext, use: (checkpoint: unknown) => Promise<T>): Promise<T> {
  const { path, format, probe } = await findCheckpoint(requested, ctx);
  const pool = new SourcePool(ctx.io);
  const readCtx: FormatReadContext = {
    io: ctx.io,
    path,
    info: probe.info,
    // Relative names resolve in the checkpoint's folder: the directory itself, or the folder of a
    // file checkpoint (a manifest's shards sit beside it).
    open: async (relative) => {
      if (relative === undefined) return pool.get(path);
      const folder = probe.info.kind === "directory" ? path : dirname(path);
      const full = resolveInside(folder, relative, path);
      await refuseLinkOut(ctx.io, path, probe.info.kind === "directory", folder, full, relative);
      return pool.get(full);
    },
    safe: ctx.safe,
    verify: ctx.verify,
  };
  return pool.hold(async () => use(await format.read!(readCtx)));
}

/**
 * The format of what is at `requested`. When nothing is there, a sharded save may have been killed
 * between the two renames of its swap: the checkpoint is then the complete folder beside the path
 * (which the next save puts back). Looked for only then, so other loads pay nothing for it.
 */
async function findCheckpoint(requested: string, ctx: StrategyContext): Promise<{ path: string; format: Format; probe: FormatProbe }> {
  try {
    return { path: requested, ...(await ctx.formats.forRead(ctx.io, requested)) };
  } catch (err) {
    const beside = err instanceof CheckpointNotFoundError ? await interruptedDcpSwap(ctx.io, requested) : undefined;
    if (beside === undefined) throw err;
    return { path: beside, ...(await ctx.formats.forRead(ctx.io, beside)) };
  }
}

/**
 * A name that passed `resolveInside` can still lead out of the folder through a symbolic link (a
 * stranger's `weights.bin -> ~/.ssh/id_rsa`): its real path must lie inside the folder's. Beside
 * a file checkpoint reached through a link, the folder of its real path counts too: Hugging Face's
 * cache links every file of a snapshot into one blob folder.
 */
async function refuseLinkOut(io: CheckpointIO, checkpoint: string, isDirectory: boolean, folder: string, full: string, relative: string): Promise<void> {
  if (typeof io.realPath !== "function") return;
  const real = (p: string) => io.realPath!(p).catch(() => undefined);
  // A missing file is reported by the open that follows, with the manifest entry that names it.
  const target = await real(full);
  if (target === undefined) return;
  const roots = [await real(folder), isDirectory ? undefined : await real(checkpoint).then((r) => r && dirname(r))];
  const inside = (root: string | undefined) => root !== undefined && target.startsWith(root.endsWith("/") ? root : `${root}/`);
  if (roots.some(inside)) return;
  throw new CorruptCheckpointError(
    `${checkpoint} names the file ${JSON.stringify(relative)}, a link to ${target}, which is outside the checkpoint folder ${folder}; refusing to open it. The checkpoint is damaged or hostile.`,
    { subject: checkpoint },
  );
}
