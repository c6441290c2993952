import {
  agree,
  convertState,
  SingleDeviceStrategy,
  strategyCollective,
  toWritableTree,
  writeCheckpoint,
  type Collective,
  type DistributedStrategyOptions,
  type Strategy,
  type StrategyContext,
  type StrategyLoadOptions,
  type StrategyLoadRawOptions,
  type StrategySaveOptions,
} from "@savepoint/core";

/** Options of {@link DDPStrategy}. */
export interface DDPStrategyOptions extends DistributedStrategyOptions {
  /**
   * How long the other ranks wait for rank 0 to finish writing the file, in ms. A rank that dies
   * is reported at once whatever this is. @default 1800000 (30 minutes, like torch.distributed)
   */
  writeTimeoutMs?: number;
}

// Why rank 0's write failed, as the other ranks report it.
const WRITE_FAILURE = "could not write the checkpoint for";

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
    ({ collective: this.collective, timeoutMs: this.#timeoutMs, writeTimeoutMs: this.#writeTimeoutMs } = strategyCollective(options, "DDPStrategy"));
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
    const agreed = await agree(this.collective, `save ${path}`, { path }, local, { timeoutMs: this.#timeoutMs });
    const target = agreed[0]!.path;
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
    await agree(this.collective, `save ${target}`, {}, local, { timeoutMs: this.#writeTimeoutMs, failure: WRITE_FAILURE });
  }

  async load(path: string, state: Record<string, unknown> | undefined, options: StrategyLoadOptions, ctx: StrategyContext): Promise<Record<string, unknown>> {
    let result: Record<string, unknown> | undefined;
    let local: unknown;
    try {
      result = await this.#local.load(path, state, options, ctx);
    } catch (err) {
      local = err;
    }
    await agree(this.collective, `load ${path}`, {}, local, { timeoutMs: this.#timeoutMs });
    return result!;
  }

  async loadRaw(path: string, target: unknown, options: StrategyLoadRawOptions, ctx: StrategyContext): Promise<void> {
    let local: unknown;
    try {
      await this.#local.loadRaw(path, target, options, ctx);
    } catch (err) {
      local = err;
    }
    await agree(this.collective, `loadRaw ${path}`, {}, local, { timeoutMs: this.#timeoutMs });
  }
}
