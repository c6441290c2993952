import type { CheckpointIO } from "../../io/checkpoint-io.js";
import { dirname, joinPath } from "../../io/paths.js";
import type { TensorSource } from "../../tensor/tensor-source.js";
import { encodeSafetensorsHeader } from "../safetensors/header.js";
import { writeSafetensors } from "../safetensors/writer.js";
import { encodeShardIndex } from "./index-json.js";
import { indexStem, planShards, shardFileName } from "./shard-plan.js";
import { writeAtomically, writeBytesAtomically } from "../../io/write-atomically.js";

/** What transformers puts in each shard's `__metadata__`. */
const SHARD_METADATA = { format: "pt" };

/**
 * Writes `tensors` as `<stem>-0000i-of-0000N.safetensors` shards beside `indexPath`, each
 * atomically, then the index last: until the index is committed, a reader sees the previous set
 * (or none), so the index's presence commits the checkpoint. Each shard carries savepoint's
 * header and tensor CRC-32s in its `__metadata__` (other readers ignore them).
 */
export async function writeShardedSafetensors(
  tensors: readonly { name: string; tensor: TensorSource }[],
  io: CheckpointIO,
  indexPath: string,
  maxShardSize: number,
  chunkBytes?: number,
): Promise<void> {
  const stem = indexStem(indexPath);
  const folder = dirname(indexPath);
  const shards = planShards(tensors, maxShardSize);
  // Refuse bad names/dtypes before any shard exists, not after some are on disk.
  for (const shard of shards) encodeSafetensorsHeader(shard.map(({ name, tensor }) => ({ name, dtype: tensor.dtype, shape: tensor.shape })), SHARD_METADATA);
  const weightMap: [string, string][] = [];
  let totalSize = 0;
  for (let i = 0; i < shards.length; i++) {
    const name = shardFileName(stem, i, shards.length);
    await writeAtomically(io, folder === "." ? name : joinPath(folder, name), (out) => writeSafetensors(out, shards[i]!, SHARD_METADATA, { checksums: true, chunkBytes }));
    for (const t of shards[i]!) {
      weightMap.push([t.name, name]);
      totalSize += t.tensor.byteLength;
    }
  }
  await writeBytesAtomically(io, indexPath, new TextEncoder().encode(encodeShardIndex(totalSize, weightMap)));
}
