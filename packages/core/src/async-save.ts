import { CheckpointWriteError } from "./errors.js";

/**
 * An async save in flight, returned by `fabric.save(path, state, { async: true })` once the state
 * is staged in host memory.
 *
 * @example
 * ```ts
 * const pending = await fabric.save("ckpt.pt", state, { async: true });
 * trainMore();                 // the write goes on in the background
 * await pending.done;          // committed, or the save's error
 * ```
 */
export class AsyncSave {
  readonly path: string;
  readonly #written: Promise<void>;
  #observed = false;

  constructor(path: string, written: Promise<void>) {
    this.path = path;
    this.#written = written;
    // The failure is kept for `done` or the next save; it must not crash the process meanwhile.
    written.catch(() => {});
  }

  /** Settles when the checkpoint is committed; rejects with the save's error. */
  get done(): Promise<void> {
    this.#observed = true;
    return this.#written;
  }

  /**
   * For the next save or load: waits, and rethrows a failure nobody has looked at via `done`, so
   * an error is never lost.
   */
  async settled(): Promise<void> {
    try {
      await this.#written;
    } catch (err) {
      if (this.#observed) return;
      const why = err instanceof Error ? err.message.replace(/^\[savepoint\] /, "") : String(err);
      throw new CheckpointWriteError(`the async save to ${this.path} failed: ${why.replace(/\.?$/, ".")} The previous checkpoint at that path is intact.`, { cause: err, subject: this.path });
    }
  }
}
