import type { CliCommand } from "../cli/command.js";
import { InvalidArgumentError } from "../errors.js";
import { launch } from "./launch.js";

/** A `savepoint` subcommand. */
export type { CliCommand } from "../cli/command.js";

const USAGE = `Usage: savepoint run -n N [options] [--] script.js [script args...]

Starts N node processes of script.js on this machine (like torchrun), each with RANK,
WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR/MASTER_PORT and SAVEPOINT_HUB, so that
collectiveFromEnv() (and DDPStrategy) connects the ranks. SIGINT/SIGTERM are forwarded to the
ranks. If a rank exits non-zero, the others' collective operations fail at once naming it; those
still running after the grace period are terminated, and savepoint run exits non-zero.

Options:
  -n, --nproc N         number of processes (also --nproc-per-node)
  --timeout-ms MS       default limit of each collective operation (SAVEPOINT_TIMEOUT_MS; default 60000)
  --grace-ms MS         how long ranks may take to stop after a failure or signal (default 5000)
  --node-arg ARG        an option for node itself, before the script (repeatable)
  -h, --help            show this help`;

/** Parsed `savepoint run` arguments. */
export interface RunArgs {
  nproc: number;
  script: string;
  args: string[];
  timeoutMs?: number;
  graceMs?: number;
  nodeArgs: string[];
}

/** Parses the arguments of `savepoint run`; throws InvalidArgumentError with the usage on mistakes. */
export function parseRunArgs(argv: string[]): RunArgs | "help" {
  let nproc: number | undefined;
  let timeoutMs: number | undefined;
  let graceMs: number | undefined;
  const nodeArgs: string[] = [];
  let i = 0;
  const value = (flag: string, inline: string | undefined): string => {
    if (inline !== undefined) return inline;
    const v = argv[++i];
    if (v === undefined) throw new InvalidArgumentError(`${flag} needs a value.\n\n${USAGE}`, { subject: flag });
    return v;
  };
  const int = (flag: string, raw: string): number => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${flag} must be a positive integer, got "${raw}".\n\n${USAGE}`, { subject: flag });
    return n;
  };
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      i++;
      break;
    }
    if (!a.startsWith("-") || a === "-") break;
    const eq = a.indexOf("=");
    const [flag, inline] = a.startsWith("--") && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    if (flag === "-h" || flag === "--help") return "help";
    else if (flag === "-n" || flag === "--nproc" || flag === "--nproc-per-node" || flag === "--nproc_per_node") nproc = int(flag, value(flag, inline));
    else if (/^-n\d+$/.test(flag)) nproc = int("-n", flag.slice(2));
    else if (flag === "--timeout-ms") timeoutMs = int(flag, value(flag, inline));
    else if (flag === "--grace-ms") graceMs = int(flag, value(flag, inline));
    else if (flag === "--node-arg") nodeArgs.push(value(flag, inline));
    else throw new InvalidArgumentError(`unknown option ${flag}.\n\n${USAGE}`, { subject: flag });
  }
  const script = argv[i];
  if (nproc === undefined) throw new InvalidArgumentError(`savepoint run needs the number of processes: -n N.\n\n${USAGE}`, { subject: "-n" });
  if (script === undefined) throw new InvalidArgumentError(`savepoint run needs the script to start.\n\n${USAGE}`, { subject: "script" });
  return { nproc, script, args: argv.slice(i + 1), timeoutMs, graceMs, nodeArgs };
}

/** `savepoint run`: the process launcher. */
export const runCommand: CliCommand = {
  name: "run",
  summary: "start N processes of a training script on this machine (like torchrun)",
  usage: USAGE,
  async run(argv) {
    const parsed = parseRunArgs(argv);
    if (parsed === "help") {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    const job = await launch({ nproc: parsed.nproc, script: parsed.script, args: parsed.args, nodeArgs: parsed.nodeArgs, timeoutMs: parsed.timeoutMs, graceMs: parsed.graceMs });
    const forward = (signal: NodeJS.Signals) => () => job.stop(signal);
    const onInt = forward("SIGINT");
    const onTerm = forward("SIGTERM");
    const onHup = forward("SIGHUP");
    process.on("SIGINT", onInt);
    process.on("SIGTERM", onTerm);
    process.on("SIGHUP", onHup);
    try {
      return (await job.done).exitCode;
    } finally {
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
      process.off("SIGHUP", onHup);
    }
  },
};
