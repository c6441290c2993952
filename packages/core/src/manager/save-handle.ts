import type { CheckpointInfo } from "./folder.js";

/**
 * A managed save, returned by `CheckpointManager.save`. A synchronous save returns it settled; an
 * `async: true` save returns it once the state is staged, and `done` settles when the checkpoint
 * is committed, the `latest` pointer moved and retention applied.
 *
 * @example
 * ```ts
 * const handle = await manager.save(step, state, { loss }, { async: true });
 * trainMore();
 * await handle.done; // the CheckpointInfo, or the save's error
 * ```
 */
export class SaveHandle {
  readonly step: number;
  /** False when `every` skipped this step and nothing was written. */
  readonly saved: boolean;
  /** Where the checkpoint is (or would have been). */
  readonly path: string;
  readonly #done: Promise<CheckpointInfo | null>;
  #observed = false;

  constructor(step: number, saved: boolean, path: string, done: Promise<CheckpointInfo | null>) {
    this.step = step;
    this.saved = saved;
    this.path = path;
    this.#done = done;
    // Kept for `done` or the next save; an unobserved failure must not crash the process meanwhile.
    done.catch(() => {});
  }

  /** The committed checkpoint (null when skipped); rejects with the save's error. */
  get done(): Promise<CheckpointInfo | null> {
    this.#observed = true;
    return this.#done;
  }

  /** Waits; rethrows a failure nobody looked at through `done`, so an error is never lost. @internal */
  async settled(): Promise<void> {
    try {
      await this.#done;
    } catch (err) {
      if (!this.#observed) throw err;
    }
  }
}

/** Result of `CheckpointManager.restore`. */
export interface RestoreResult extends CheckpointInfo {
  /** What `fabric.load` returned: the checkpoint's content beyond the keys of the state. */
  readonly remainder: Record<string, unknown>;
  /** Newer checkpoints that were skipped because they could not be read. */
  readonly skipped: readonly { readonly path: string; readonly error: Error }[];
}
