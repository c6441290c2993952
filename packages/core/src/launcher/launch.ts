import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { constants } from "node:os";
import { describeExit, checkTimeout } from "../collectives/failure.js";
import { TcpHubServer } from "../collectives/tcp.js";
import { InvalidArgumentError } from "../errors.js";

/** Options of {@link launch}. */
export interface LaunchOptions {
  /** Number of processes (ranks) on this machine. */
  nproc: number;
  /** The script every rank runs with `node`. */
  script: string;
  /** Arguments of the script. @default [] */
  args?: string[];
  /** Options for `node` itself, before the script (e.g. `--enable-source-maps`). @default [] */
  nodeArgs?: string[];
  /** Extra environment of the ranks. @default {} */
  env?: Record<string, string | undefined>;
  /** Default limit of each collective operation in the ranks (sets SAVEPOINT_TIMEOUT_MS). @default inherited, else 60000 */
  timeoutMs?: number;
  /**
   * After a rank fails (or a signal is forwarded), how long the others may take to exit on their
   * own (reporting the failure) before they get SIGTERM, and then SIGKILL. @default 5000
   */
  graceMs?: number;
  /** Where the launcher's own lines go. @default process.stderr */
  log?: (line: string) => void;
  /** How the ranks' stdout/stderr are connected. @default "inherit" */
  stdio?: "inherit" | "pipe";
}

/** How one rank ended. */
export interface RankExit {
  rank: number;
  pid: number | undefined;
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The outcome of a {@link launch}. */
export interface LaunchResult {
  /** 0 when every rank exited with 0; else the first failure's code (128 + signal number for a signal). */
  exitCode: number;
  ranks: RankExit[];
}

/** A running job started by {@link launch}. */
export interface LaunchHandle {
  /** The ranks' processes, by rank. */
  readonly processes: readonly ChildProcess[];
  /** Resolves when every rank has exited. */
  readonly done: Promise<LaunchResult>;
  /** Forwards `signal` to every rank still running; they are killed if they outlive the grace period. A second call kills at once. */
  stop(signal?: NodeJS.Signals): void;
}

/**
 * Starts `nproc` processes of `node script args…` on this machine, like torchrun: each gets RANK,
 * WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR/MASTER_PORT, and SAVEPOINT_HUB with
 * SAVEPOINT_RUN_ID, through which `collectiveFromEnv()` reaches this launcher's coordinator. When a
 * rank exits non-zero, the others' collective operations fail at once naming it, and those still
 * running after the grace period are stopped; the job's exit code is then non-zero.
 *
 * @example
 * ```ts
 * const job = await launch({ nproc: 2, script: "train.mjs" });
 * const { exitCode } = await job.done;
 * ```
 */
export async function launch(options: LaunchOptions): Promise<LaunchHandle> {
  const nproc = options.nproc;
  if (!Number.isInteger(nproc) || nproc < 1) throw new InvalidArgumentError(`the number of processes must be a positive integer, got ${String(nproc)}.`, { subject: "nproc" });
  if (typeof options.script !== "string" || options.script === "") throw new InvalidArgumentError("launch needs the script every rank runs.", { subject: "script" });
  const graceMs = options.graceMs === undefined ? 5000 : checkTimeout(options.graceMs, "graceMs");
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const runId = randomBytes(8).toString("hex");
  const server = await TcpHubServer.start({ worldSize: nproc, runId });
  const hubAddr = `${server.host}:${server.port}`;

  const processes: ChildProcess[] = [];
  const exits: RankExit[] = [];
  let firstFailure: RankExit | undefined;
  let stopSignal: NodeJS.Signals | undefined;
  let escalate: ReturnType<typeof setTimeout> | undefined;
  let killed = false;

  const running = () => processes.filter((_, r) => exits[r] === undefined);
  const killAll = () => {
    killed = true;
    for (const p of running()) p.kill("SIGKILL");
  };
  const terminateAfterGrace = () => {
    clearTimeout(escalate);
    escalate = setTimeout(() => {
      const left = running();
      if (left.length === 0) return;
      log(`[savepoint] ${left.length} rank(s) still running after ${graceMs} ms; sending SIGTERM`);
      for (const p of left) p.kill("SIGTERM");
      escalate = setTimeout(killAll, graceMs);
    }, graceMs);
  };

  let resolveDone!: (r: LaunchResult) => void;
  const done = new Promise<LaunchResult>((resolve) => (resolveDone = resolve));
  let left = nproc;

  for (let rank = 0; rank < nproc; rank++) {
    const env: Record<string, string | undefined> = {
      ...process.env,
      ...options.env,
      RANK: String(rank),
      WORLD_SIZE: String(nproc),
      LOCAL_RANK: String(rank),
      LOCAL_WORLD_SIZE: String(nproc),
      GROUP_RANK: "0",
      MASTER_ADDR: server.host,
      MASTER_PORT: String(server.port),
      SAVEPOINT_HUB: hubAddr,
      SAVEPOINT_RUN_ID: runId,
    };
    if (options.timeoutMs !== undefined) env.SAVEPOINT_TIMEOUT_MS = String(checkTimeout(options.timeoutMs, "timeoutMs"));
    const child = spawn(process.execPath, [...(options.nodeArgs ?? []), options.script, ...(options.args ?? [])], {
      env,
      stdio: options.stdio === "pipe" ? ["ignore", "pipe", "pipe"] : ["inherit", "inherit", "inherit"],
    });
    processes.push(child);
    let ended = false;
    const onEnd = (code: number | null, signal: NodeJS.Signals | null) => {
      if (ended) return;
      ended = true;
      const exit: RankExit = { rank, pid: child.pid, code, signal };
      exits[rank] = exit;
      server.rankGone(rank, describeExit(code, signal));
      if ((code !== 0 || signal) && !firstFailure && !stopSignal) {
        firstFailure = exit;
        const others = running().length;
        log(`[savepoint] rank ${rank} (pid ${child.pid}) ${describeExit(code, signal)}${others > 0 ? `; the other ${others} rank(s) get ${graceMs} ms to stop before they are terminated` : ""}`);
        terminateAfterGrace();
      }
      if (--left === 0) {
        clearTimeout(escalate);
        void server.close().then(() => resolveDone({ exitCode: exitCodeOf(firstFailure, stopSignal, exits), ranks: exits }));
      }
    };
    child.on("exit", onEnd);
    child.on("error", (err) => {
      log(`[savepoint] could not start rank ${rank}: ${err.message}`);
      onEnd(127, null);
    });
  }

  return {
    processes,
    done,
    stop(signal: NodeJS.Signals = "SIGTERM") {
      if (stopSignal || killed) {
        killAll();
        return;
      }
      stopSignal = signal;
      for (const p of running()) p.kill(signal);
      terminateAfterGrace();
    },
  };
}

function exitCodeOf(failure: RankExit | undefined, stopSignal: NodeJS.Signals | undefined, exits: RankExit[]): number {
  if (stopSignal) return 128 + (constants.signals[stopSignal] ?? 15);
  const f = failure ?? exits.find((e) => e.code !== 0 || e.signal);
  if (!f) return 0;
  if (f.signal) return 128 + (constants.signals[f.signal] ?? 9);
  return f.code ?? 1;
}
