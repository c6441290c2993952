import { CheckpointNotFoundError } from "../../errors.js";
import type { CheckpointIO } from "../../io/checkpoint-io.js";
import { resolveInside } from "../../io/paths.js";
import { SourcePool } from "../../io/source-pool.js";
import { countedTree } from "../../tensor/counted-tree.js";
import { DEFAULT_CHUNK_BYTES, type TensorSource } from "../../tensor/tensor-source.js";
import type { SafetyMode } from "../format.js";
import { torchZipFormat } from "../torch/torch-zip-format.js";
import { dcpFormat } from "./dcp-format.js";
import { DCP_METADATA_FILE } from "./dcp-metadata.js";

export interface ConsolidateOptions {
  /** Where the folder and the output are. */
  readonly io: CheckpointIO;
  /** Streaming chunk size. @default 8 MiB */
  readonly chunkBytes?: number;
  /** Unknown pickle globals: inert placeholders or refused. @default "placeholder" */
  readonly safe?: SafetyMode;
  /** Check every chunk's CRC while copying. @default true */
  readonly verify?: boolean;
  /** Called with the size of every piece of tensor data copied (for a progress bar). */
  readonly onBytes?: (bytes: number) => void;
  /** Called once the input is read, with the tensor bytes the copy will stream. */
  readonly onStart?: (info: { tensors: number; bytes: number }) => void;
}

/**
 * Turns a DCP checkpoint folder (Lightning's sharded FSDP checkpoint) into one torch file, as
 * Lightning's `consolidate_checkpoint` does: the tensors reassembled from the ranks' chunks, the
 * values nested back by `planner_data`, and `meta.pt` merged at the top. Tensors stream one at a
 * time in bounded pieces, each piece read from the chunks that hold it, so memory stays a few
 * pieces whatever the checkpoint's size. Returns the counts of tensors and bytes copied.
 */
export async function consolidateDcp(folder: string, output: string, options: ConsolidateOptions): Promise<{ tensors: number; bytes: number }> {
  const { io } = options;
  const info = await io.stat(folder);
  if (info?.kind !== "directory") {
    throw new CheckpointNotFoundError(`${folder} is ${info ? "a file" : "missing"}; consolidate takes the folder of a sharded (DCP) checkpoint.`, { subject: folder });
  }
  const entries = io.list ? await io.list(folder) : undefined;
  if (!dcpFormat.detect({ path: folder, info, entries })) {
    throw new CheckpointNotFoundError(`${folder} has no ${DCP_METADATA_FILE}, so it is not a complete sharded checkpoint (a save that never finished leaves such a folder). Pick a checkpoint that was saved to the end.`, { subject: folder });
  }
  const pool = new SourcePool(io);
  return pool.hold(async () => {
    const tree = await dcpFormat.read!({
      io,
      path: folder,
      info,
      open: (relative) => pool.get(relative === undefined ? folder : resolveInside(folder, relative, folder)),
      safe: options.safe ?? "placeholder",
      verify: options.verify ?? true,
    });
    const tensors = new Map<TensorSource, TensorSource>();
    const counted = countedTree(tree, tensors, options.onBytes ?? (() => {}));
    const bytes = [...tensors.keys()].reduce((n, t) => n + t.byteLength, 0);
    options.onStart?.({ tensors: tensors.size, bytes });
    await torchZipFormat.write!(counted, { io, path: output, chunkBytes: options.chunkBytes ?? DEFAULT_CHUNK_BYTES });
    return { tensors: tensors.size, bytes };
  });
}
