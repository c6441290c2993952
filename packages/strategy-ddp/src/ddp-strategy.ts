import {
  CheckpointNotFoundError,
  CheckpointWriteError,
  CollectiveTimeoutError,
  CorruptCheckpointError,
  InterfaceError,
  InvalidArgumentError,
  SavepointError,
  SingleDeviceStrategy,
  StrictLoadError,
  UnsafeCheckpointError,
  UnsupportedFormatError,
  collectiveFromEnv,
  convertState,
  toWritableTree,
  writeCheckpoint,
  type Collective,
  type Strategy,
  type StrategyContext,
  type StrategyLoadOptions,
  type StrategyLoadRawOptions,
  type StrategySaveOptions,
} from "@savepoint/core";

/** Options of {@link DDPStrategy}. */
export interface DDPStrategyOptions {
  /** How the ranks talk. @default collectiveFromEnv() (savepoint run, Redis, threads, or a single process) */
  collective?: Collective;
  /** Limit of each agreement step (ranks arriving at save/load) in ms. @default the collective's (SAVEPOINT_TIMEOUT_MS, else 60000) */
  timeoutMs?: number;
  /**
   * How long the other ranks wait for rank 0 to finish writing the file, in ms. A rank that dies
   * is reported at once whatever this is. @default 1800000 (30 minutes, like torch.distributed)
   */
  writeTimeoutMs?: number;
}

/** What each rank reports after its part of an operation. */
interface Outcome {
  path?: string;
  error?: { name: string; message: string };
}

const ERRORS: Record<string, new (message: string, options?: { cause?: unknown; subject?: string }) => SavepointError> = {
  CheckpointNotFoundError,
  StrictLoadError,
  CorruptCheckpointError,
  UnsupportedFormatError,
  UnsafeCheckpointError,
  InvalidArgumentError,
  InterfaceError,
  CheckpointWriteError,
  CollectiveTimeoutError,
};

/**
 * Distributed data parallel, as Lightning's DDP strategy: every rank holds a full replica and calls
 * `save`; every rank converts its state, rank 0 writes one torch-format file (atomically) at the
 * path rank 0 was given, and all ranks return together once it is on disk. `load` reads the file
 * on every rank (each reads only the entries it restores). A rank that fails, dies or never calls
 * `save` makes the others fail with an error naming it instead of hanging. With
 * `fabric.save(..., { async: true })` the ranks leave once they agreed and rank 0 has staged its
 * state in host memory; rank 0 writes in the background and its handle reports the outcome.
 *
 * Importing this package registers it as `"ddp"`: `new Fabric({ strategy: "ddp" })`.
 *
 * @example
 * ```ts
 * // savepoint run -n 4 train.js
 * import { Fabric } from "@savepoint/core";
 * import { DDPStrategy } from "@savepoint/strategy-ddp";
 * const fabric = new Fabric({ strategy: new DDPStrategy() });
 * await fabric.save("ckpt/last.ckpt", { model, optimizer, step }); // on every rank
 * ```
 */
export class DDPStrategy implements Strategy {
  readonly name: string = "ddp";
  readonly collective: Collective;
  readonly #timeoutMs?: number;
  readonly #writeTimeoutMs: number;
  readonly #local: SingleDeviceStrategy;

  constructor(options: Collective | DDPStrategyOptions = {}) {
    const opts: DDPStrategyOptions = isCollective(options) ? { collective: options } : (options ?? {});
    if (typeof opts !== "object") throw new InvalidArgumentError(`DDPStrategy takes a collective or an options object, got ${typeof opts}.`);
    this.collective = opts.collective ?? collectiveFromEnv({ timeoutMs: opts.timeoutMs });
    this.#timeoutMs = checkMs(opts.timeoutMs, "timeoutMs");
    this.#writeTimeoutMs = checkMs(opts.writeTimeoutMs, "writeTimeoutMs") ?? 1_800_000;
    this.#local = new SingleDeviceStrategy(this.collective);
  }

  get rank(): number {
    return this.collective.rank;
  }

  get worldSize(): number {
    return this.collective.worldSize;
  }

  async save(path: string, state: Record<string, unknown>, options: StrategySaveOptions, ctx: StrategyContext): Promise<void> {
    // 1. Every rank converts its state; the ranks agree on the outcome and on rank 0's path.
    let tree: unknown;
    let local: unknown;
    try {
      tree = toWritableTree(await convertState(state, options.filter, ctx), ctx.backend);
    } catch (err) {
      local = err;
    }
    const agreed = await this.#agree(`save ${path}`, { path, ...(local ? { error: describeError(local) } : {}) }, local, this.#timeoutMs);
    const target = agreed[0]!.path!;
    if (options.stage) {
      // Async save (as Lightning's AsyncCheckpointIO): the ranks have agreed; rank 0 copies its
      // state to host memory, which returns control to the caller, and writes in the background.
      // No collective call follows, so the training loop's own collective calls stay in step.
      // The write's outcome is reported on rank 0's handle.
      if (this.rank !== 0) return;
      const staged = await options.stage(tree);
      try {
        await writeCheckpoint(staged.tree, target, ctx, options.format);
      } finally {
        staged.release();
      }
      return;
    }
    // 2. Rank 0 writes, atomically (the CheckpointIO writes a temporary file, then renames it).
    local = undefined;
    if (this.rank === 0) {
      try {
        await writeCheckpoint(tree, target, ctx, options.format);
      } catch (err) {
        local = err;
      }
    }
    // 3. Nobody leaves before the file is complete (or every rank knows why it is not).
    await this.#agree(`save ${target}`, local ? { error: describeError(local) } : {}, local, this.#writeTimeoutMs, "write");
  }

  async load(path: string, state: Record<string, unknown> | undefined, options: StrategyLoadOptions, ctx: StrategyContext): Promise<Record<string, unknown>> {
    let result: Record<string, unknown> | undefined;
    let local: unknown;
    try {
      result = await this.#local.load(path, state, options, ctx);
    } catch (err) {
      local = err;
    }
    await this.#agree(`load ${path}`, local ? { error: describeError(local) } : {}, local, this.#timeoutMs);
    return result!;
  }

  async loadRaw(path: string, target: unknown, options: StrategyLoadRawOptions, ctx: StrategyContext): Promise<void> {
    let local: unknown;
    try {
      await this.#local.loadRaw(path, target, options, ctx);
    } catch (err) {
      local = err;
    }
    await this.#agree(`loadRaw ${path}`, local ? { error: describeError(local) } : {}, local, this.#timeoutMs);
  }

  /**
   * Gathers every rank's outcome. Throws this rank's own error if it failed, else an error of the
   * same class naming the rank that failed; collective failures (a rank missing or dead) surface
   * as CollectiveTimeoutError unless this rank already has its own error to report.
   */
  async #agree(tag: string, outcome: Outcome, local: unknown, timeoutMs: number | undefined, step?: "write"): Promise<Outcome[]> {
    let all: Outcome[];
    try {
      all = await this.collective.allGather<Outcome>(tag, outcome, timeoutMs === undefined ? undefined : { timeoutMs });
    } catch (err) {
      throw local ?? err;
    }
    if (local) throw local;
    const failed = all.findIndex((o) => o?.error);
    if (failed >= 0) {
      const e = all[failed]!.error!;
      const Ctor = ERRORS[e.name] ?? SavepointError;
      const what = step === "write" ? `rank ${failed} could not write the checkpoint for \`${tag}\`` : `rank ${failed} failed in \`${tag}\``;
      throw new Ctor(`${what} (this is rank ${this.rank}; no rank continues): ${e.message.replace(/^\[savepoint\] /, "")}`, { subject: `rank ${failed}` });
    }
    return all;
  }
}

function isCollective(value: unknown): value is Collective {
  return typeof value === "object" && value !== null && typeof (value as Collective).allGather === "function" && typeof (value as Collective).barrier === "function";
}

function checkMs(ms: unknown, what: string): number | undefined {
  if (ms === undefined) return undefined;
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms <= 0) throw new InvalidArgumentError(`DDPStrategy \`${what}\` must be a positive number of milliseconds, got ${String(ms)}.`, { subject: what });
  return ms;
}

function describeError(err: unknown): { name: string; message: string } {
  if (err instanceof Error) return { name: err.name, message: err.message };
  return { name: "Error", message: String(err) };
}
