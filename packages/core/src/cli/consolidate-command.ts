import { consolidateDcp } from "../formats/dcp/consolidate.js";
import { NodeFileIO } from "../io/node-fs-io.js";
import { parseCommand, type CliCommand } from "./command.js";
import { formatBytes, ProgressBar } from "./terminal.js";

const USAGE = `Usage: savepoint consolidate DIR OUT

Turns a sharded checkpoint folder (torch distributed checkpoint: .metadata, __R_0.distcp files,
meta.pt; what Lightning's FSDP strategy and @savepoint/strategy-fsdp write) into one torch file
OUT, like Lightning's consolidate_checkpoint. Tensors stream one by one in bounded pieces: the
whole checkpoint is never in memory. Chunk CRCs are checked on the way.

Options:
  --json     print { path, out, tensors, bytes } instead of a sentence
  -h, --help this help

Exit codes: 0 ok, 2 the folder is not a complete sharded checkpoint or OUT cannot be written.`;

/** `savepoint consolidate DIR OUT`. */
export const consolidateCommand: CliCommand = {
  name: "consolidate",
  summary: "turn a sharded (DCP) checkpoint folder into one torch file, streaming",
  usage: USAGE,
  async run(argv) {
    const parsed = parseCommand(argv, { name: "consolidate", usage: USAGE, positionals: ["DIR", "OUT"], options: { json: { type: "boolean" } } });
    if (typeof parsed === "number") return parsed;
    const [dir, out] = parsed.positionals as [string, string];
    let bar: ProgressBar | undefined;
    const result = await consolidateDcp(dir, out, {
      io: new NodeFileIO(),
      onStart: ({ bytes }) => (bar = new ProgressBar(`consolidating ${dir}`, bytes)),
      onBytes: (n) => bar?.advance(n),
    });
    bar?.finish();
    if (parsed.values.json) process.stdout.write(`${JSON.stringify({ path: dir, out, ...result })}\n`);
    else process.stdout.write(`wrote ${out} (${result.tensors} tensors, ${formatBytes(result.bytes)})\n`);
    return 0;
  },
};
