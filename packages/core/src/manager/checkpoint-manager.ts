import { describe } from "../capabilities.js";
import { CheckpointNotFoundError, CorruptCheckpointError, InvalidArgumentError, UnsupportedFormatError } from "../errors.js";
import type { Fabric, LoadOptions, SaveOptions } from "../fabric.js";
import { ManagedFolder, type CheckpointInfo } from "./folder.js";
import { checkMetrics, type Metrics } from "./metrics.js";
import { resolveOptions, type CheckpointManagerOptions, type ResolvedOptions } from "./options.js";
import { checkpointsToRemove } from "./retention.js";
import { SaveHandle, type RestoreResult } from "./save-handle.js";
import { readAllTensors } from "./verify-tensors.js";

/**
 * Keeps a folder of checkpoints for a training loop: one checkpoint per saved step, a `latest`
 * pointer, retention of the newest and the best, and resumption from the newest checkpoint that
 * still loads. Built only on the public `Fabric` API and `fabric.io`, so it works with every
 * strategy and IO; on several ranks every rank calls every method and rank 0 alone manages files.
 *
 * A save commits the checkpoint first (atomically, through the strategy), then moves the pointer,
 * then deletes what retention no longer wants: a crash at any point leaves every committed
 * checkpoint loadable and never deletes the newest.
 *
 * @example
 * ```ts
 * const manager = new CheckpointManager(fabric, "ckpt", { keepLast: 3, keepBest: { metric: "val_loss", mode: "min", k: 2 } });
 * const resumed = await manager.restore(state);          // null on a fresh start
 * for (let step = resumed ? resumed.step + 1 : 0; step < steps; step++) {
 *   train(step);
 *   await manager.save(step, state, { val_loss });
 * }
 * ```
 */
export class CheckpointManager {
  readonly fabric: Fabric;
  readonly dir: string;
  readonly #options: ResolvedOptions;
  readonly #folder: ManagedFolder;
  /** Saves take turns: the next starts once the previous has returned its handle. */
  #turn: Promise<void> = Promise.resolve();
  /** The newest save's handle; the next save or restore waits for it to settle. */
  #last: SaveHandle | undefined;
  /** Checkpoints `restore` found unreadable: skipped by `latest`, never deleted, not counted by `keepLast`. */
  readonly #damaged = new Set<string>();

  constructor(fabric: Fabric, dir: string, options: CheckpointManagerOptions = {}) {
    const f = fabric as Partial<Fabric> | null;
    if (typeof f !== "object" || f === null || typeof f.save !== "function" || typeof f.load !== "function" || typeof f.barrier !== "function" || typeof f.io !== "object") {
      throw new InvalidArgumentError(`CheckpointManager needs a Fabric as its first argument, got ${describe(fabric)}.`);
    }
    if (typeof dir !== "string" || dir.length === 0) throw new InvalidArgumentError(`the checkpoint folder must be a non-empty string, got ${describe(dir)}.`);
    this.#options = resolveOptions(options);
    const retains = this.#options.keepLast !== undefined || this.#options.keepBest !== undefined;
    const missing = [typeof fabric.io.list !== "function" && "list", retains && typeof fabric.io.remove !== "function" && "remove"].filter(Boolean);
    if (missing.length > 0) {
      throw new InvalidArgumentError(`CheckpointManager needs an IO that can ${missing.join(" and ")} files; ${fabric.io.name} cannot. Use NodeFileIO or MemoryIO, or add ${missing.join("/")} to your CheckpointIO.`);
    }
    this.fabric = fabric;
    this.dir = dir.length > 1 ? dir.replace(/\/+$/, "") : dir;
    const warn = (m: string) => {
      if (fabric.isGlobalZero) this.#options.onWarning(m);
    };
    this.#folder = new ManagedFolder(fabric.io, this.dir, this.#options.extension, warn);
  }

  /** Where the checkpoint of `step` is (or would be) saved. */
  pathOf(step: number): string {
    checkStep(step);
    return this.#folder.pathOf(step);
  }

  /**
   * Saves `state` as the checkpoint of `step` (unless `every` skips it), then moves `latest` and
   * applies retention. Every rank calls it; the strategy decides who writes the checkpoint, rank 0
   * writes the metrics sidecar and the pointer and removes old checkpoints. With `{ async: true }`
   * it returns once the state is staged; the returned handle's `done` settles after the commit, and
   * an unobserved failure is thrown by the next `save` or `restore`.
   *
   * @example
   * ```ts
   * await manager.save(step, { model, optimizer, step }, { val_loss: 0.21 });
   * ```
   */
  async save(step: number, state: Record<string, unknown>, metrics?: Metrics, options?: SaveOptions): Promise<SaveHandle> {
    checkStep(step);
    if (typeof state !== "object" || state === null || Array.isArray(state)) throw new InvalidArgumentError(`the state to save must be an object of named values, got ${describe(state)}.`);
    const checked = checkMetrics(metrics);
    const best = this.#options.keepBest;
    if (best && !(best.metric in checked)) {
      throw new InvalidArgumentError(`keepBest watches the metric "${best.metric}", but save(${step}) got ${Object.keys(checked).length ? `only ${Object.keys(checked).join(", ")}` : "no metrics"}. Pass it: save(step, state, { ${best.metric}: value }).`);
    }
    const path = this.#folder.pathOf(step);
    if (step % this.#options.every !== 0) return new SaveHandle(step, false, path, Promise.resolve(null));
    return this.#inTurn(async () => {
      const handle = await this.#start(step, path, state, checked, { ...this.#options.saveOptions, ...options });
      this.#last = handle;
      return handle;
    });
  }

  /** Runs `fn` after every earlier save has finished (surfacing its unobserved failure), one at a time. */
  async #inTurn<T>(fn: () => Promise<T>): Promise<T> {
    const before = this.#turn;
    let release!: () => void;
    this.#turn = new Promise<void>((r) => (release = r));
    try {
      await before;
      const last = this.#last;
      this.#last = undefined;
      await last?.settled();
      return await fn();
    } finally {
      release();
    }
  }

  async #start(step: number, path: string, state: Record<string, unknown>, metrics: Metrics, options: SaveOptions): Promise<SaveHandle> {
    const zero = this.fabric.isGlobalZero;
    const savedAt = new Date().toISOString();
    // The sidecar goes first for a new step, so a committed checkpoint never lacks its metrics
    // (keepBest would rank it last). Over an existing step it goes after the commit instead, so a
    // failed save leaves the old checkpoint with its own metrics.
    const overwrite = zero && (await this.fabric.io.stat(path)) !== null;
    if (zero && !overwrite) await this.#folder.writeSidecar(step, metrics, savedAt);
    const dropSidecar = async () => {
      if (zero && !overwrite) await this.fabric.io.remove?.(this.#folder.sidecarOf(step)).catch(() => {});
    };
    const background = options.async === true;
    let written: Promise<void>;
    try {
      if (background) written = (await this.fabric.save(path, state, { ...options, async: true })).done;
      else written = this.fabric.save(path, state, { ...options, async: false }).then(() => {});
      if (!background) await written;
    } catch (err) {
      await dropSidecar();
      throw err;
    }

    const finish = async (): Promise<CheckpointInfo> => {
      try {
        await written;
      } catch (err) {
        await dropSidecar();
        throw err;
      }
      this.#damaged.delete(path);
      let failure: unknown;
      if (zero) {
        try {
          if (overwrite) await this.#folder.writeSidecar(step, metrics, savedAt);
          await this.#folder.writePointer(step);
          await this.#retain(step);
        } catch (err) {
          failure = err;
        }
      }
      // Nobody runs ahead (into the next save, or out of the loop) while rank 0 still manages
      // files. Not in the background: collectives there would interleave with the training loop's.
      if (!background) await this.fabric.barrier(`savepoint: CheckpointManager.save(${step})`);
      if (failure !== undefined) throw failure;
      return { step, path, metrics, savedAt };
    };
    if (background) return new SaveHandle(step, true, path, finish());
    const info = await finish();
    return new SaveHandle(step, true, path, Promise.resolve(info));
  }

  /** Deletes what retention no longer keeps, after the new checkpoint is committed. Rank 0 only. */
  async #retain(saved: number): Promise<void> {
    const { checkpoints, orphanSidecars } = await this.#folder.scan();
    const remove = this.fabric.io.remove;
    if (!remove) return;
    const doomed = checkpointsToRemove(checkpoints, this.#options, new Set([saved]), this.#damaged);
    for (const c of doomed) {
      try {
        // Checkpoint before sidecar: a crash in between leaves an orphan sidecar, never a checkpoint without metrics.
        await remove.call(this.fabric.io, c.path);
        await remove.call(this.fabric.io, this.#folder.sidecarOf(c.step));
      } catch (err) {
        this.#options.onWarning(`[savepoint] could not remove the old checkpoint ${c.path}: ${(err as Error).message} It is kept; remove it by hand.`);
      }
    }
    for (const s of orphanSidecars) await remove.call(this.fabric.io, s).catch(() => {});
  }

  /** Committed checkpoints in step order (oldest first). Lists the folder on every call. */
  async list(): Promise<CheckpointInfo[]> {
    return (await this.#folder.scan()).checkpoints;
  }

  /**
   * The newest committed checkpoint (highest step), or null when there is none. Checkpoints that
   * `restore` found damaged are passed over. The file is not read: `restore` checks it.
   */
  async latest(): Promise<CheckpointInfo | null> {
    const all = await this.list();
    for (let i = all.length - 1; i >= 0; i--) if (!this.#damaged.has(all[i]!.path)) return all[i]!;
    return null;
  }

  /**
   * Loads the newest checkpoint that loads into `state` (in place, as `fabric.load` does), skipping
   * damaged ones with a warning. Every tensor that ends up in `state` is read (and CRC-checked)
   * before it returns; without a state only the checkpoint's structure is checked. Returns null
   * when the folder holds no checkpoint (a fresh start); throws when checkpoints exist but none
   * loads, rather than silently starting over.
   *
   * @example
   * ```ts
   * const resumed = await manager.restore({ model, optimizer });
   * const start = resumed ? resumed.step + 1 : 0;
   * ```
   */
  async restore(state?: Record<string, unknown>, options: LoadOptions = {}): Promise<RestoreResult | null> {
    await this.#inTurn(async () => {});
    const candidates = (await this.list()).reverse();
    const skipped: { path: string; error: Error }[] = [];
    for (const c of candidates) {
      try {
        const remainder = await this.fabric.load(c.path, state, options);
        // Models and optimizers were read in place; plain tensor values arrive lazily and are
        // read here, so damage shows now and moves on to an older checkpoint.
        if (state) await readAllTensors(Object.values(state));
        return { ...c, remainder, skipped };
      } catch (err) {
        // Only damage moves on to an older checkpoint; a state that does not match (StrictLoadError),
        // a permission problem or a timeout would fail the same way on every checkpoint.
        if (!(err instanceof CorruptCheckpointError || err instanceof UnsupportedFormatError || err instanceof CheckpointNotFoundError)) throw err;
        this.#damaged.add(c.path);
        skipped.push({ path: c.path, error: err });
        if (this.fabric.isGlobalZero) {
          this.#options.onWarning(`[savepoint] skipping the damaged checkpoint ${c.path} (step ${c.step}): ${err.message} Trying an older one; the damaged file is left in place.`);
        }
      }
    }
    if (skipped.length === 0) return null;
    throw new CorruptCheckpointError(
      `none of the ${skipped.length} checkpoints in ${this.dir} can be loaded (${skipped.map((s) => s.path).join(", ")}); the first error was: ${skipped[0]!.error.message} Restore one from a backup, or start afresh in another folder.`,
      { cause: skipped[0]!.error, subject: this.dir },
    );
  }
}

function checkStep(step: unknown): asserts step is number {
  if (typeof step !== "number" || !Number.isSafeInteger(step) || step < 0) {
    throw new InvalidArgumentError(`the step must be a non-negative integer, got ${describe(step)}.`);
  }
}
