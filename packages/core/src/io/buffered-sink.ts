import type { ByteSink } from "./byte-source.js";

/**
 * Coalesces small writes (headers, pickles) into one buffer and passes large chunks straight
 * through, so a file system sees few large writes and tensor bytes are never copied.
 */
export class BufferedSink implements ByteSink {
  readonly #write: (chunk: Uint8Array) => Promise<void>;
  readonly #buffer: Uint8Array;
  #used = 0;
  #position = 0;

  constructor(write: (chunk: Uint8Array) => Promise<void>, bufferBytes = 1 << 20) {
    this.#write = write;
    this.#buffer = new Uint8Array(bufferBytes);
  }

  get position(): number {
    return this.#position;
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.#position += chunk.byteLength;
    if (chunk.byteLength >= this.#buffer.byteLength >> 2) {
      await this.flush();
      await this.#write(chunk);
      return;
    }
    if (this.#used + chunk.byteLength > this.#buffer.byteLength) await this.flush();
    this.#buffer.set(chunk, this.#used);
    this.#used += chunk.byteLength;
  }

  /** Writes out what is buffered. */
  async flush(): Promise<void> {
    if (this.#used === 0) return;
    const n = this.#used;
    this.#used = 0;
    await this.#write(this.#buffer.subarray(0, n));
  }
}
