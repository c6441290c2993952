import { CorruptCheckpointError } from "../../errors.js";
import type { LazyTensor } from "../../tensor/stored-tensor.js";
import { setOwn } from "../../tree/plain.js";
import { readChecksums } from "../safetensors/checksums.js";
import { readSafetensorsHeader } from "../safetensors/header.js";
import { lazyTensors } from "../safetensors/reader.js";
import type { SiblingFiles } from "../tfjs/sibling-files.js";
import type { ShardIndex } from "./index-json.js";

/**
 * Opens every shard an index names, reads its header, and checks that index and shards agree
 * exactly (each listed tensor is in its shard, each shard tensor is listed there), so a mixed or
 * incomplete shard set fails the load instead of loading a model half from another save.
 * Returns tensor name → lazy tensor in weight_map order. With `verify`, shards savepoint wrote have
 * their header and tensor CRC-32s checked (shards from other writers carry none).
 */
export async function readShardedSafetensors(index: ShardIndex, files: SiblingFiles, indexPath: string, verify = true): Promise<Record<string, LazyTensor>> {
  const byShard = new Map<string, string[]>();
  for (const [tensor, shard] of index.weightMap) {
    const list = byShard.get(shard);
    if (list) list.push(tensor);
    else byShard.set(shard, [tensor]);
  }
  const owner = new Map(index.weightMap);

  const shards = await Promise.all(
    [...byShard].map(async ([shard, listed]) => {
      const source = await files.open(shard, `${indexPath} (weight_map ${JSON.stringify(listed[0])})`);
      const header = await readSafetensorsHeader(source);
      // Errors name the index as well: it is what the user loaded.
      const file = `${source.name} (a shard of ${indexPath})`;
      const crcs = verify ? readChecksums(header, file) : undefined;
      const tensors = lazyTensors(source, header, source.name, crcs && { crcs, file });
      for (const name of tensors.keys()) {
        const mapped = owner.get(name);
        if (mapped === shard) continue;
        const listedAs = mapped === undefined ? `${indexPath} does not list it` : `${indexPath} maps it to ${mapped}`;
        throw new CorruptCheckpointError(`shard ${source.name} holds tensor ${JSON.stringify(name)}, but ${listedAs}. The index and shards come from different saves; re-save or re-download the whole set.`, { subject: source.name });
      }
      for (const name of listed) {
        if (!tensors.has(name)) {
          throw new CorruptCheckpointError(`${indexPath} maps tensor ${JSON.stringify(name)} to ${shard}, but shard ${source.name} has no such tensor. The shard is missing tensors or is from another save; re-save or re-download the whole set.`, { subject: source.name });
        }
      }
      return tensors;
    }),
  );

  const all = new Map<string, LazyTensor>();
  for (const tensors of shards) for (const [name, t] of tensors) all.set(name, t);
  const out: Record<string, LazyTensor> = {};
  for (const [name] of index.weightMap) setOwn(out, name, all.get(name)!);
  return out;
}
