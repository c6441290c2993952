import { isPlainObject, isTensorSource, withCheckpoint, type StrategyContext } from "@savepoint/core";

/**
 * A record's CRC can only be checked by reading all of it, and each rank reads only its rows. So
 * for a whole-file checkpoint the ranks split the checking: rank r streams every tensor whose
 * position (among the tensors under `keys`) is r modulo the world size through the verifying
 * reader, keeping nothing. Together the ranks check every record once; each then reads its rows
 * with verification off.
 */
export async function verifyShare(path: string, keys: readonly string[], ctx: StrategyContext, rank: number, worldSize: number): Promise<void> {
  await withCheckpoint(path, { ...ctx, verify: true }, async (tree) => {
    if (!isPlainObject(tree)) return;
    let position = 0;
    const visit = async (v: unknown): Promise<void> => {
      if (isTensorSource(v)) {
        if (position++ % worldSize === rank) for await (const _ of v.chunks(ctx.chunkBytes)) void _;
      } else if (Array.isArray(v)) {
        for (const x of v) await visit(x);
      } else if (isPlainObject(v)) {
        for (const x of Object.values(v)) await visit(x);
      }
    };
    for (const k of keys) if (Object.hasOwn(tree, k)) await visit(tree[k]);
  });
}
