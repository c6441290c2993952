import type { ByteSink } from "./byte-source.js";

/**
 * Coalesces small writes (headers, pickles) into one buffer and passes large chunks straight
 * through, so a file system sees few large writes and tensor bytes are never copied.
 */
export class BufferedSink implements ByteSink {
  readonly #write: (chunk: Uint8Array, position: number) => Promise<void>;
  readonly #writev: ((chunks: Uint8Array[], position: number) => Promise<void>) | undefined;
  readonly #buffer: Uint8Array;
  #used = 0;
  #position = 0;
  /** Bytes handed to `write`/`writev` so far: where the next one starts. */
  #flushed = 0;

  /**
   * @param write writes one chunk in full at `position` (its offset in the output).
   * @param bufferBytes size of the coalescing buffer; chunks of a quarter of it or more pass straight through.
   * @param writev writes several chunks in order at `position` in one call (e.g. `FileHandle.writev`);
   *   lets a big chunk go out together with the buffered bytes before it, in a single request.
   */
  constructor(write: (chunk: Uint8Array, position: number) => Promise<void>, bufferBytes = 1 << 20, writev?: (chunks: Uint8Array[], position: number) => Promise<void>) {
    this.#write = write;
    this.#writev = writev;
    this.#buffer = new Uint8Array(bufferBytes);
  }

  get position(): number {
    return this.#position;
  }

  /** Chunks of at least this size pass straight through; only they may overlap (see `write`). */
  get passThroughBytes(): number {
    return this.#buffer.byteLength >> 2;
  }

  /**
   * Appends `chunk`. A big chunk's write is issued before this returns (no await first), so the
   * caller can work on the chunk, e.g. checksum it, while it is being written. Chunks of at least
   * {@link passThroughBytes} never touch the buffer once this returns, so when the underlying
   * writes are positional (each carries its offset) several of them may be in flight at once;
   * a smaller chunk must be written only when nothing else is in flight.
   */
  write(chunk: Uint8Array): Promise<void> {
    this.#position += chunk.byteLength;
    if (chunk.byteLength >= this.#buffer.byteLength >> 2) {
      if (this.#used === 0) return this.#out(chunk);
      // A copy of the few buffered bytes: the buffer is free again at once, even while this write
      // is still under way (see `write`).
      const head = this.#buffer.slice(0, this.#used);
      this.#used = 0;
      if (this.#writev) {
        const at = this.#flushed;
        this.#flushed += head.byteLength + chunk.byteLength;
        return this.#writev([head, chunk], at);
      }
      const first = this.#out(head);
      const second = this.#out(chunk);
      return first.then(() => second);
    }
    if (this.#used + chunk.byteLength > this.#buffer.byteLength) {
      return this.flush().then(() => this.#append(chunk));
    }
    this.#append(chunk);
    return Promise.resolve();
  }

  #out(chunk: Uint8Array): Promise<void> {
    const at = this.#flushed;
    this.#flushed += chunk.byteLength;
    return this.#write(chunk, at);
  }

  #append(chunk: Uint8Array): void {
    this.#buffer.set(chunk, this.#used);
    this.#used += chunk.byteLength;
  }

  /** Writes out what is buffered. */
  async flush(): Promise<void> {
    if (this.#used === 0) return;
    const n = this.#used;
    this.#used = 0;
    await this.#out(this.#buffer.subarray(0, n));
  }
}
