import { CorruptCheckpointError, InvalidArgumentError } from "../../errors.js";
import { basename } from "../../io/paths.js";
import type { Format, FormatProbe, FormatReadContext, FormatWriteContext } from "../format.js";
import { siblingFiles } from "../tfjs/sibling-files.js";
import { MAX_INDEX_BYTES, parseShardIndex } from "./index-json.js";
import { flatTensors } from "./flat-tensors.js";
import { readShardedSafetensors } from "./reader.js";
import { INDEX_SUFFIX } from "./shard-plan.js";
import { writeShardedSafetensors } from "./writer.js";

/** Options of {@link safetensorsIndexFormatWith}. */
export interface SafetensorsIndexOptions {
  /** Most tensor bytes per shard file (a larger single tensor gets its own shard). @default 5_000_000_000 (transformers' "5GB") */
  maxShardSize?: number;
}

/** transformers' default `max_shard_size="5GB"`, in decimal bytes as it parses it. */
export const DEFAULT_MAX_SHARD_SIZE = 5_000_000_000;

/**
 * Hugging Face sharded safetensors: `model.safetensors.index.json` plus
 * `model-0000i-of-0000N.safetensors` shards beside it. Reads as a flat object of tensor name →
 * tensor; writes a flat (or `.`-flattened nested) object of tensors. `FormatWriteContext` has no
 * options, so the shard size is fixed per format instance.
 *
 * @example
 * ```ts
 * const fabric = new Fabric({ formats: [...defaultFormats(), safetensorsIndexFormatWith({ maxShardSize: 2e9 })] });
 * await fabric.save("out/model.safetensors.index.json", { model });
 * ```
 */
export function safetensorsIndexFormatWith(options: SafetensorsIndexOptions = {}): Format {
  const maxShardSize = options.maxShardSize ?? DEFAULT_MAX_SHARD_SIZE;
  if (!Number.isSafeInteger(maxShardSize) || maxShardSize <= 0) {
    throw new InvalidArgumentError(`maxShardSize must be a positive integer number of bytes, got ${String(maxShardSize)}.`);
  }
  return {
    name: "safetensors-index",
    extensions: [INDEX_SUFFIX],

    detect(probe: FormatProbe): boolean {
      if (probe.info.kind !== "file" || !probe.head) return false;
      if (!basename(probe.path).toLowerCase().endsWith(INDEX_SUFFIX)) return false;
      return new TextDecoder().decode(probe.head).trimStart().startsWith("{");
    },

    async read(ctx: FormatReadContext): Promise<unknown> {
      const source = await ctx.open();
      let text: string;
      try {
        if (source.size > MAX_INDEX_BYTES) {
          throw new CorruptCheckpointError(`${ctx.path} is ${source.size} bytes, over the ${MAX_INDEX_BYTES}-byte limit for a sharded safetensors index; it is not an index savepoint reads.`, { subject: ctx.path });
        }
        text = new TextDecoder("utf-8", { fatal: true }).decode(await source.read(0, source.size));
      } catch (err) {
        if (!(err instanceof TypeError)) throw err;
        throw new CorruptCheckpointError(`${ctx.path} is not valid UTF-8, so it is not a sharded safetensors index. Re-download it.`, { subject: ctx.path });
      } finally {
        // Only the shards are read again.
        await source.close();
      }
      return readShardedSafetensors(parseShardIndex(text, ctx.path), siblingFiles(ctx), ctx.path, ctx.verify);
    },

    async write(tree: unknown, ctx: FormatWriteContext): Promise<void> {
      await writeShardedSafetensors(flatTensors(tree), ctx.io, ctx.path, maxShardSize, ctx.chunkBytes);
    },
  };
}

/** The sharded safetensors format with transformers' default 5 GB shards. */
export const safetensorsIndexFormat: Format = safetensorsIndexFormatWith();
