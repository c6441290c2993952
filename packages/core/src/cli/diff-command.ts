import { Fabric } from "../fabric.js";
import { parseCommand, type CliCommand } from "./command.js";
import type { StoredTensor } from "../tensor/stored-tensor.js";
import { terminal } from "./terminal.js";
import { treeEntries, type TreeEntry } from "./tree-entries.js";

const USAGE = `Usage: savepoint diff A B [--json]

Compares two checkpoints (any formats): keys only in A (removed), only in B (added), and keys whose
dtype, shape or values differ, with the largest absolute difference of the values.

Options:
  --json     { added: [...], removed: [...], changed: [{ key, reason, maxAbsDiff? }] }
  -h, --help this help

Exit codes: 0 identical, 1 different, 2 a checkpoint cannot be read.`;

export interface CheckpointDiff {
  added: string[];
  removed: string[];
  changed: { key: string; reason: string; maxAbsDiff?: number }[];
}

function describeValue(e: TreeEntry): string {
  if (e.kind === "tensor") return `${e.dtype}[${e.shape.join(",")}]`;
  if (e.kind === "object") return `<${e.type}>`;
  return typeof e.value === "bigint" ? `${e.value}n` : JSON.stringify(e.value) ?? String(e.value);
}

/** Largest |a - b| over two tensors of one shape, read chunk by chunk as numbers. */
async function maxAbsDiff(a: StoredTensor, b: StoredTensor): Promise<number> {
  const x = await a.data();
  const y = await b.data();
  let m = 0;
  for (let i = 0; i < x.length; i++) {
    const p = Number(x[i]!);
    const q = Number(y[i]!);
    if (p === q || (Number.isNaN(p) && Number.isNaN(q))) continue;
    // NaN against a number, or infinities of opposite sign, differ without bound.
    const d = Math.abs(p - q);
    m = Number.isNaN(d) ? Infinity : Math.max(m, d);
  }
  return m;
}

/** Compares two checkpoints key by key. */
export async function diffCheckpoints(pathA: string, pathB: string): Promise<CheckpointDiff> {
  const fabric = new Fabric();
  const a = new Map([...treeEntries(await fabric.load(pathA))].map((e) => [e.key, e]));
  const b = new Map([...treeEntries(await fabric.load(pathB))].map((e) => [e.key, e]));
  const out: CheckpointDiff = { added: [], removed: [], changed: [] };
  for (const key of a.keys()) if (!b.has(key)) out.removed.push(key);
  for (const [key, eb] of b) {
    const ea = a.get(key);
    if (!ea) {
      out.added.push(key);
      continue;
    }
    if (ea.kind === "tensor" && eb.kind === "tensor") {
      if (ea.dtype !== eb.dtype || ea.shape.join() !== eb.shape.join()) {
        out.changed.push({ key, reason: `${describeValue(ea)} → ${describeValue(eb)}` });
        continue;
      }
      const ta = ea.value as StoredTensor;
      const tb = eb.value as StoredTensor;
      const ba = await ta.bytes();
      const bb = await tb.bytes();
      if (Buffer.compare(ba, bb) !== 0) out.changed.push({ key, reason: "values", maxAbsDiff: await maxAbsDiff(ta, tb) });
    } else if (describeValue(ea) !== describeValue(eb)) {
      out.changed.push({ key, reason: `${describeValue(ea)} → ${describeValue(eb)}` });
    }
  }
  return out;
}

/** `savepoint diff A B`. */
export const diffCommand: CliCommand = {
  name: "diff",
  summary: "list keys added, removed and changed between two checkpoints",
  usage: USAGE,
  async run(argv) {
    const parsed = parseCommand(argv, { name: "diff", usage: USAGE, positionals: ["A", "B"], options: { json: { type: "boolean" } } });
    if (typeof parsed === "number") return parsed;
    const { values, positionals } = parsed;
    const d = await diffCheckpoints(positionals[0]!, positionals[1]!);
    const same = d.added.length + d.removed.length + d.changed.length === 0;
    if (values.json) {
      process.stdout.write(`${JSON.stringify(d, null, 2)}\n`);
      return same ? 0 : 1;
    }
    const t = terminal();
    for (const k of d.removed) process.stdout.write(`${t.paint("red", "-")} ${k}\n`);
    for (const k of d.added) process.stdout.write(`${t.paint("green", "+")} ${k}\n`);
    for (const c of d.changed) process.stdout.write(`${t.paint("yellow", "~")} ${c.key}  ${c.reason}${c.maxAbsDiff !== undefined ? ` (max |Δ| ${c.maxAbsDiff})` : ""}\n`);
    process.stdout.write(same ? "identical\n" : `${d.removed.length} removed, ${d.added.length} added, ${d.changed.length} changed\n`);
    return same ? 0 : 1;
  },
};
