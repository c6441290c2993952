import { InvalidArgumentError } from "../errors.js";
import { Fabric } from "../fabric.js";
import { defaultFormats } from "../formats/default-formats.js";
import { safetensorsIndexFormatWith } from "../formats/safetensors-index/safetensors-index-format.js";
import { parseCommand, type CliCommand } from "./command.js";
import { countedTree } from "../tensor/counted-tree.js";
import type { TensorSource } from "../tensor/tensor-source.js";
import { isPlainObject } from "../tree/plain.js";
import { ProgressBar } from "./terminal.js";

const USAGE = `Usage: savepoint convert IN OUT [--max-shard-size BYTES]

Converts a checkpoint between formats, chosen by OUT's extension: torch zip (.pt .pth .ckpt
.bin), safetensors (.safetensors), sharded safetensors (.safetensors.index.json). IN may be any
format savepoint reads. Tensors stream one by one; the whole checkpoint is never in memory.

Options:
  --max-shard-size BYTES  largest shard of a sharded safetensors output (default 5000000000)
  -h, --help              this help

Exit codes: 0 ok, 2 the input cannot be read or the output cannot be written (the message says why).`;

/** Converts `input` to `output` (format by extension), streaming; returns the bytes of tensors copied. */
export async function convertCheckpoint(input: string, output: string, options: { maxShardSize?: number; progress?: boolean } = {}): Promise<number> {
  const formats = options.maxShardSize === undefined ? defaultFormats() : [safetensorsIndexFormatWith({ maxShardSize: options.maxShardSize }), ...defaultFormats().filter((f) => f.name !== "safetensors-index")];
  const fabric = new Fabric({ formats });
  const tree = await fabric.load(input);
  if (!isPlainObject(tree)) throw new InvalidArgumentError(`${input} does not hold a dictionary at the top, which every output format needs.`);
  const tensors = new Map<TensorSource, TensorSource>();
  let bar: ProgressBar | undefined;
  const counted = countedTree(tree, tensors, (n) => bar!.advance(n), "convert");
  const total = [...tensors.keys()].reduce((n, t) => n + t.byteLength, 0);
  bar = new ProgressBar(`converting ${input}`, total);
  await fabric.save(output, counted as Record<string, unknown>);
  bar.finish();
  return total;
}

/** `savepoint convert IN OUT`. */
export const convertCommand: CliCommand = {
  name: "convert",
  summary: "convert between torch zip, safetensors and sharded safetensors (by extension)",
  usage: USAGE,
  async run(argv) {
    const parsed = parseCommand(argv, { name: "convert", usage: USAGE, positionals: ["IN", "OUT"], options: { "max-shard-size": { type: "string" } } });
    if (typeof parsed === "number") return parsed;
    const { values, positionals } = parsed;
    const raw = values["max-shard-size"];
    const maxShardSize = raw === undefined ? undefined : Number(raw);
    if (maxShardSize !== undefined && (!Number.isSafeInteger(maxShardSize) || maxShardSize <= 0)) {
      process.stderr.write(`[savepoint] --max-shard-size must be a positive number of bytes, got ${raw}.\n`);
      return 2;
    }
    const bytes = await convertCheckpoint(positionals[0]!, positionals[1]!, { maxShardSize });
    process.stdout.write(`wrote ${positionals[1]} (${bytes} tensor bytes)\n`);
    return 0;
  },
};
