import { open } from "node:fs/promises";
import { CorruptCheckpointError } from "../../src/errors.js";
import type { ByteSink, ByteSource } from "../../src/io/byte-source.js";

/** An in-memory ByteSource that records every read, so tests can see what was touched. */
export class MemorySource implements ByteSource {
  readonly reads: [offset: number, length: number][] = [];
  closed = false;
  constructor(
    readonly bytes: Uint8Array,
    readonly name = "memory.safetensors",
    /** Pretend size, for files too large to build (the bytes past `bytes` read as absent). */
    readonly size = bytes.byteLength,
  ) {}

  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    if (this.closed) throw new Error(`${this.name} read after close`);
    this.reads.push([offset, length]);
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new CorruptCheckpointError(`range [${offset}, ${offset + length}) passes the end of ${this.name} (${this.size} bytes).`, { subject: this.name });
    }
    if (offset + length > this.bytes.byteLength) throw new Error(`test source ${this.name} only holds ${this.bytes.byteLength} real bytes`);
    const view = this.bytes.subarray(offset, offset + length);
    if (into) {
      into.set(view);
      return into;
    }
    return view.slice();
  }

  /** Largest single read, to check nothing big was read (or allocated) for a bad header. */
  get largestRead(): number {
    return Math.max(0, ...this.reads.map(([, l]) => l));
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** An in-memory ByteSink. Copies each chunk, since callers may reuse theirs. */
export class MemorySink implements ByteSink {
  readonly #chunks: Uint8Array[] = [];
  position = 0;

  async write(chunk: Uint8Array): Promise<void> {
    this.#chunks.push(chunk.slice());
    this.position += chunk.byteLength;
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.position);
    let at = 0;
    for (const c of this.#chunks) {
      out.set(c, at);
      at += c.byteLength;
    }
    return out;
  }
}

/** A ByteSource reading ranges of a real file. */
export async function fileSource(path: string): Promise<ByteSource & { reads: number }> {
  const handle = await open(path, "r");
  const { size } = await handle.stat();
  let closed = false;
  const src = {
    name: path,
    size,
    reads: 0,
    async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
      if (closed) throw new Error(`${path} read after close`);
      if (offset < 0 || length < 0 || offset + length > size) {
        throw new CorruptCheckpointError(`range [${offset}, ${offset + length}) passes the end of ${path} (${size} bytes).`, { subject: path });
      }
      src.reads++;
      const buf = into ?? new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(buf, done, length - done, offset + done);
        if (bytesRead === 0) throw new CorruptCheckpointError(`${path} ended early.`, { subject: path });
        done += bytesRead;
      }
      return buf;
    },
    async close(): Promise<void> {
      closed = true;
      await handle.close();
    },
  };
  return src;
}
