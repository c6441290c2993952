/**
 * A first-in, first-out allocator over one buffer: ranges are taken in order and given back in the
 * same order, as a load pipeline reads records ahead and writes them out one after the other. No
 * range ever overlaps a live one; a request that does not fit now gets `undefined` (retry after a
 * release).
 */
export class StagingRing {
  readonly bytes: Uint8Array;
  /** Live ranges, oldest first. */
  readonly #live: { start: number; end: number }[] = [];

  constructor(capacity: number) {
    this.bytes = new Uint8Array(capacity);
  }

  get capacity(): number {
    return this.bytes.byteLength;
  }

  /** True when no range is taken. */
  get idle(): boolean {
    return this.#live.length === 0;
  }

  /** A view of `n` free bytes (n > 0), or undefined when they do not fit until older ranges are given back. */
  take(n: number): Uint8Array | undefined {
    if (n <= 0 || n > this.capacity) return undefined;
    const first = this.#live[0];
    const last = this.#live[this.#live.length - 1];
    let start: number | undefined;
    if (!first || !last) start = 0;
    else if (last.end > first.start) {
      // Live bytes form one run [first.start, last.end): free space after it, then before it.
      if (this.capacity - last.end >= n) start = last.end;
      else if (first.start >= n) start = 0;
    } else if (first.start - last.end >= n) {
      // Wrapped: the only free space lies between the newest range and the oldest.
      start = last.end;
    }
    if (start === undefined) return undefined;
    this.#live.push({ start, end: start + n });
    return this.bytes.subarray(start, start + n);
  }

  /** Gives back the oldest live range. */
  release(): void {
    this.#live.shift();
  }

  /** Gives back every range (once nothing writes into them any more). */
  clear(): void {
    this.#live.length = 0;
  }
}
