import { Fabric } from "../fabric.js";
import { parseCommand, type CliCommand } from "./command.js";
import { formatBytes, terminal } from "./terminal.js";
import { treeEntries } from "./tree-entries.js";

const USAGE = `Usage: savepoint inspect PATH [--json]

Prints the keys of a checkpoint with dtype, shape and size of every tensor, reading headers only.
PATH may be any format savepoint reads (torch .pt/.ckpt, safetensors, sharded safetensors index,
tfjs model.json, ...).

Options:
  --json     one JSON document: { path, tensors, bytes, entries: [...] }
  -h, --help this help

Exit codes: 0 ok, 2 the checkpoint cannot be read (the message says why).`;

function display(v: unknown): string {
  if (typeof v === "bigint") return `${v}`;
  if (v instanceof Uint8Array) return `bytes[${v.byteLength}]`;
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** `savepoint inspect`: the tree of a checkpoint, for people or (`--json`) for programs. */
export const inspectCommand: CliCommand = {
  name: "inspect",
  summary: "list a checkpoint's keys with dtype, shape and size",
  usage: USAGE,
  async run(argv) {
    const parsed = parseCommand(argv, { name: "inspect", usage: USAGE, positionals: ["PATH"], options: { json: { type: "boolean" } } });
    if (typeof parsed === "number") return parsed;
    const { values, positionals } = parsed;
    const path = positionals[0]!;
    const tree = await new Fabric().load(path);
    const entries = [...treeEntries(tree)];
    const tensors = entries.filter((e) => e.kind === "tensor");
    const bytes = tensors.reduce((n, e) => n + (e.kind === "tensor" ? e.bytes : 0), 0);
    if (values.json) {
      const out = entries.map((e) =>
        e.kind === "tensor" ? { key: e.key, dtype: e.dtype, shape: e.shape, bytes: e.bytes } : e.kind === "object" ? { key: e.key, object: e.type } : { key: e.key, value: typeof e.value === "bigint" ? String(e.value) : e.value instanceof Uint8Array ? { bytes: e.value.byteLength } : e.value },
      );
      process.stdout.write(`${JSON.stringify({ path, tensors: tensors.length, bytes, entries: out }, null, 2)}\n`);
      return 0;
    }
    const t = terminal();
    const width = Math.min(60, Math.max(10, ...entries.map((e) => e.key.length)));
    for (const e of entries) {
      const key = e.key.padEnd(width);
      if (e.kind === "tensor") process.stdout.write(`${t.paint("cyan", key)}  ${e.dtype.padEnd(8)} [${e.shape.join(", ")}]  ${t.paint("dim", formatBytes(e.bytes))}\n`);
      else if (e.kind === "object") process.stdout.write(`${key}  ${t.paint("yellow", `<${e.type}> (inert)`)}\n`);
      else process.stdout.write(`${key}  ${display(e.value)}\n`);
    }
    process.stdout.write(`${t.paint("bold", `${tensors.length} tensors, ${formatBytes(bytes)}`)} in ${path}\n`);
    return 0;
  },
};
