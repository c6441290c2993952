/**
 * One spare staging object (a buffer, a ring) kept between loads and dropped after `idleMs`
 * unused: a training loop that loads again and again reuses it, and a process that loaded once
 * does not hold the memory for ever. The larger of two returned objects is the one kept.
 */
export class IdleSpare<T> {
  readonly #idleMs: number;
  readonly #size: (x: T) => number;
  #spare: T | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(idleMs: number, size: (x: T) => number) {
    this.#idleMs = idleMs;
    this.#size = size;
  }

  /** The spare if it holds at least `size`, else a new one from `make`; either way the spare is taken. */
  take(size: number, make: () => T): T {
    const s = this.#spare;
    this.#spare = undefined;
    return s !== undefined && this.#size(s) >= size ? s : make();
  }

  /** Hands `x` back for the next load. */
  give(x: T): void {
    if (this.#spare === undefined || this.#size(this.#spare) < this.#size(x)) this.#spare = x;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#spare = undefined;
      this.#timer = undefined;
    }, this.#idleMs);
    (this.#timer as { unref?: () => void }).unref?.();
  }
}
