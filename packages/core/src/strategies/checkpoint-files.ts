import type { FormatReadContext } from "../formats/format.js";
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
export async function withCheckpoint<T>(path: string, ctx: StrategyContext, use: (checkpoint: unknown) => Promise<T>): Promise<T> {
  const { format, probe } = await ctx.formats.forRead(ctx.io, path);
  const pool = new SourcePool(ctx.io);
  const readCtx: FormatReadContext = {
    io: ctx.io,
    path,
    info: probe.info,
    // Relative names resolve in the checkpoint's folder: the directory itself, or the folder of a
    // file checkpoint (a manifest's shards sit beside it).
    open: (relative) => pool.get(relative === undefined ? path : resolveInside(probe.info.kind === "directory" ? path : dirname(path), relative, path)),
    safe: ctx.safe,
    verify: ctx.verify,
  };
  return pool.hold(async () => use(await format.read!(readCtx)));
}
