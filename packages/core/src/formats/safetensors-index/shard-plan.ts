import { InvalidArgumentError } from "../../errors.js";
import { basename } from "../../io/paths.js";
import type { TensorSource } from "../../tensor/tensor-source.js";

export const INDEX_SUFFIX = ".safetensors.index.json";

/**
 * Packs tensors, in order, into shards whose tensor bytes stay within `maxShardSize` (headers not
 * counted, as in huggingface_hub's splitter). A tensor larger than the limit gets a shard alone.
 */
export function planShards<T extends { tensor: TensorSource }>(tensors: readonly T[], maxShardSize: number): T[][] {
  const shards: T[][] = [];
  let current: T[] = [];
  let size = 0;
  for (const t of tensors) {
    const n = t.tensor.byteLength;
    if (current.length > 0 && size + n > maxShardSize) {
      shards.push(current);
      current = [];
      size = 0;
    }
    current.push(t);
    size += n;
  }
  if (current.length > 0) shards.push(current);
  return shards;
}

/** `model.safetensors.index.json` → `model`, the prefix of its shard names. */
export function indexStem(indexPath: string): string {
  const name = basename(indexPath);
  const stem = name.endsWith(INDEX_SUFFIX) ? name.slice(0, -INDEX_SUFFIX.length) : "";
  if (stem === "") {
    throw new InvalidArgumentError(`a sharded safetensors checkpoint is saved to a path like "model${INDEX_SUFFIX}", got ${JSON.stringify(indexPath)}; rename the path (shards are named after it).`, { subject: indexPath });
  }
  return stem;
}

/** `model-00002-of-00005.safetensors`, as transformers names shards (1-based). */
export function shardFileName(stem: string, index: number, count: number): string {
  const pad = (n: number): string => String(n).padStart(5, "0");
  return `${stem}-${pad(index + 1)}-of-${pad(count)}.safetensors`;
}
