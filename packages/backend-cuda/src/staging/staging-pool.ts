/** One staging buffer of a pool: pinned host memory plus the index of its stream. */
export interface StagingSlot {
  /** 0..size-1; each slot has its own CUDA stream, so slots' copies are independent. */
  readonly index: number;
  /** The whole buffer (`bufferBytes` long). */
  readonly bytes: Uint8Array;
}

export interface StagingPoolOptions {
  /** Number of buffers (the most copies in flight at once). */
  count: number;
  bufferBytes: number;
  /** Allocates buffer `index` (pinned memory in production); called on the buffer's first use. */
  allocate(bytes: number, index: number): Uint8Array;
  /** Frees a buffer made by `allocate`. */
  free?(bytes: Uint8Array, index: number): void;
}

/**
 * A small fixed set of staging buffers shared by every transfer of one device. Buffers are made on
 * first use (a small checkpoint pins one buffer, not all), handed out first-free, and waiters are
 * served in arrival order.
 */
export class StagingPool {
  readonly size: number;
  readonly bufferBytes: number;
  readonly #options: StagingPoolOptions;
  readonly #slots: (StagingSlot | undefined)[];
  readonly #free: number[] = [];
  readonly #waiters: ((slot: StagingSlot) => void)[] = [];
  #made = 0;
  #closed = false;

  constructor(options: StagingPoolOptions) {
    if (!Number.isSafeInteger(options.count) || options.count < 1) throw new RangeError(`a staging pool needs at least one buffer, got ${options.count}`);
    if (!Number.isSafeInteger(options.bufferBytes) || options.bufferBytes < 1) throw new RangeError(`staging buffers need a positive size, got ${options.bufferBytes}`);
    this.size = options.count;
    this.bufferBytes = options.bufferBytes;
    this.#options = options;
    this.#slots = new Array<StagingSlot | undefined>(options.count).fill(undefined);
  }

  /** Buffers not handed out right now (including ones not yet allocated). */
  get available(): number {
    return this.#free.length + (this.size - this.#made);
  }

  /** A free buffer now, or undefined when all are in use or others wait for one. Never waits. */
  tryAcquire(): StagingSlot | undefined {
    this.#checkOpen();
    if (this.#waiters.length > 0) return undefined; // no jumping the queue
    const index = this.#free.shift();
    if (index !== undefined) return this.#slots[index]!;
    if (this.#made < this.size) {
      const i = this.#made;
      const slot: StagingSlot = { index: i, bytes: this.#options.allocate(this.bufferBytes, i) };
      this.#slots[i] = slot;
      this.#made++;
      return slot;
    }
    return undefined;
  }

  /**
   * A buffer, waiting for one to be released if all are in use. A caller that already holds
   * buffers should use `tryAcquire` instead: waiting while holding can deadlock two transfers.
   */
  acquire(): Promise<StagingSlot> {
    const slot = this.tryAcquire();
    if (slot) return Promise.resolve(slot);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Returns a buffer; the longest waiter gets it directly. */
  release(slot: StagingSlot): void {
    if (this.#slots[slot.index] !== slot || this.#free.includes(slot.index)) throw new Error(`staging buffer ${slot.index} released twice or not from this pool`);
    const waiter = this.#waiters.shift();
    if (waiter) waiter(slot);
    else this.#free.push(slot.index);
  }

  /** Frees every buffer; all must have been released. */
  close(): void {
    if (this.#closed) return;
    if (this.#free.length !== this.#made) throw new Error(`${this.#made - this.#free.length} staging buffer(s) are still in use; finish or cancel transfers first`);
    this.#closed = true;
    for (const i of this.#free) this.#options.free?.(this.#slots[i]!.bytes, i);
    this.#free.length = 0;
  }

  #checkOpen(): void {
    if (this.#closed) throw new Error("the staging pool was closed");
  }
}
