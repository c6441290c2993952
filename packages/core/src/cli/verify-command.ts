import { SavepointError } from "../errors.js";
import { Fabric } from "../fabric.js";
import { parseCommand, type CliCommand } from "./command.js";
import type { TensorSource } from "../tensor/tensor-source.js";
import { formatBytes, ProgressBar, terminal } from "./terminal.js";
import { treeEntries } from "./tree-entries.js";

const USAGE = `Usage: savepoint verify PATH [--json]

Reads every record of a checkpoint: checks its structure and, where the format stores one (torch
zip), each record's CRC32. Nothing is loaded into a model; memory stays bounded.

Options:
  --json     { path, ok, tensors, bytes, error? }
  -h, --help this help

Exit codes: 0 intact, 1 damaged (the message names the record), 2 unreadable or not a checkpoint.`;

/** Reads every tensor of `path` through its format's checks; returns counts, throws on damage. */
export async function verifyCheckpoint(path: string, onBytes: (n: number) => void = () => {}): Promise<{ tensors: number; bytes: number }> {
  const fabric = new Fabric({ verify: true });
  const tree = await fabric.load(path);
  let tensors = 0;
  let bytes = 0;
  for (const e of treeEntries(tree)) {
    if (e.kind !== "tensor") continue;
    tensors++;
    for await (const chunk of (e.value as TensorSource).chunks()) {
      bytes += chunk.byteLength;
      onBytes(chunk.byteLength);
    }
  }
  return { tensors, bytes };
}

/** `savepoint verify`. */
export const verifyCommand: CliCommand = {
  name: "verify",
  summary: "check every record's CRC and structure; exit 1 on damage",
  usage: USAGE,
  async run(argv) {
    const parsed = parseCommand(argv, { name: "verify", usage: USAGE, positionals: ["PATH"], options: { json: { type: "boolean" } } });
    if (typeof parsed === "number") return parsed;
    const { values, positionals } = parsed;
    const path = positionals[0]!;
    const t = terminal();
    let bar: ProgressBar | undefined;
    try {
      const result = await verifyCheckpoint(path, (n) => bar?.advance(n));
      bar?.finish();
      if (values.json) process.stdout.write(`${JSON.stringify({ path, ok: true, ...result })}\n`);
      else process.stdout.write(`${t.paint("green", "ok")} ${path}: ${result.tensors} tensors, ${formatBytes(result.bytes)} verified\n`);
      return 0;
    } catch (err) {
      if (!(err instanceof SavepointError)) throw err;
      // Missing or unreadable files are usage errors (2); damage found in a readable file is 1.
      const damaged = err.name === "CorruptCheckpointError";
      if (values.json) process.stdout.write(`${JSON.stringify({ path, ok: false, error: err.message, kind: err.name })}\n`);
      else process.stderr.write(`${t.paint("red", damaged ? "damaged" : "unreadable")} ${err.message}\n`);
      return damaged ? 1 : 2;
    }
  },
};
