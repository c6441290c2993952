import { InvalidArgumentError } from "../errors.js";
import { Fabric } from "../fabric.js";
import { defaultFormats } from "../formats/default-formats.js";
import { safetensorsIndexFormatWith } from "../formats/safetensors-index/safetensors-index-format.js";
import { parseCommand, type CliCommand } from "./command.js";
import { isTensorSource, TENSOR_SOURCE, type TensorSource } from "../tensor/tensor-source.js";
import { checkDepth, isPlainObject } from "../tree/plain.js";
import { copyMarks } from "../tree/python-values.js";
import { ProgressBar } from "./terminal.js";

const USAGE = `Usage: savepoint convert IN OUT [--max-shard-size BYTES]

Converts a checkpoint between formats, chosen by OUT's extension: torch zip (.pt .pth .ckpt
.bin), safetensors (.safetensors), sharded safetensors (.safetensors.index.json). IN may be any
format savepoint reads. Tensors stream one by one; the whole checkpoint is never in memory.

Options:
  --max-shard-size BYTES  largest shard of a sharded safetensors output (default 5000000000)
  -h, --help              this help

Exit codes: 0 ok, 2 the input cannot be read or the output cannot be written (the message says why).`;

/** Wraps every tensor so the bytes streamed through it advance a progress bar. */
function counted(tree: unknown, bar: ProgressBar, seen = new Map<TensorSource, TensorSource>(), depth = 0): unknown {
  checkDepth(depth, "convert");
  if (isTensorSource(tree)) {
    let w = seen.get(tree);
    if (!w) {
      const t = tree;
      w = {
        [TENSOR_SOURCE]: true,
        dtype: t.dtype,
        shape: t.shape,
        byteLength: t.byteLength,
        async *chunks(n?: number) {
          for await (const c of t.chunks(n)) {
            yield c;
            bar.advance(c.byteLength);
          }
        },
      } as TensorSource;
      seen.set(tree, w);
    }
    return w;
  }
  if (Array.isArray(tree)) return copyMarks(tree, tree.map((v) => counted(v, bar, seen, depth + 1)));
  if (isPlainObject(tree)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(tree)) out[k] = counted(v, bar, seen, depth + 1);
    return copyMarks(tree, out);
  }
  return tree;
}

function totalBytes(tree: unknown, seen = new Set<unknown>(), depth = 0): number {
  checkDepth(depth, "convert");
  if (isTensorSource(tree)) {
    if (seen.has(tree)) return 0;
    seen.add(tree);
    return tree.byteLength;
  }
  if (Array.isArray(tree)) return tree.reduce((n: number, v) => n + totalBytes(v, seen, depth + 1), 0);
  if (isPlainObject(tree)) return Object.values(tree).reduce((n: number, v) => n + totalBytes(v, seen, depth + 1), 0);
  return 0;
}

/** Converts `input` to `output` (format by extension), streaming; returns the bytes of tensors copied. */
export async function convertCheckpoint(input: string, output: string, options: { maxShardSize?: number; progress?: boolean } = {}): Promise<number> {
  const formats = options.maxShardSize === undefined ? defaultFormats() : [safetensorsIndexFormatWith({ maxShardSize: options.maxShardSize }), ...defaultFormats().filter((f) => f.name !== "safetensors-index")];
  const fabric = new Fabric({ formats });
  const tree = await fabric.load(input);
  if (!isPlainObject(tree)) throw new InvalidArgumentError(`${input} does not hold a dictionary at the top, which every output format needs.`);
  const total = totalBytes(tree);
  const bar = new ProgressBar(`converting ${input}`, total);
  await fabric.save(output, counted(tree, bar) as Record<string, unknown>);
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
