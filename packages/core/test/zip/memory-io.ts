/** In-memory and sparse ByteSource/ByteSink stand-ins for the zip tests (the real IO layer lives elsewhere). */
import { open, type FileHandle } from "node:fs/promises";
import { CorruptCheckpointError } from "../../src/errors.js";
import type { ByteSink, ByteSource } from "../../src/io/byte-source.js";

/** A ByteSource over bytes in memory that records every read, so tests can assert what was touched. */
export class MemorySource implements ByteSource {
  readonly reads: Array<{ offset: number; length: number }> = [];
  closed = false;
  constructor(
    readonly bytes: Uint8Array,
    readonly name = "memory.zip",
  ) {}
  get size(): number {
    return this.bytes.length;
  }
  get largestRead(): number {
    return this.reads.reduce((m, r) => Math.max(m, r.length), 0);
  }
  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    if (this.closed) throw new Error(`${this.name}: read after close`);
    this.reads.push({ offset, length });
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new CorruptCheckpointError(`${this.name}: read of ${length} bytes at ${offset} passes the end (${this.size})`);
    }
    const out = into ?? new Uint8Array(length);
    out.set(this.bytes.subarray(offset, offset + length));
    return out.subarray(0, length);
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

/** A ByteSink that keeps everything and records the size and identity of each write. */
export class MemorySink implements ByteSink {
  readonly writes: Uint8Array[] = [];
  readonly chunks: Uint8Array[] = [];
  position = 0;
  async write(chunk: Uint8Array): Promise<void> {
    this.writes.push(chunk);
    this.chunks.push(chunk.slice()); // the writer may reuse its buffer once we resolve
    this.position += chunk.length;
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.position);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

/** Chunks at least this big are treated as holes of zeros by the sparse sinks. */
export const HOLE_THRESHOLD = 1 << 20;

function assertLooksZero(chunk: Uint8Array): void {
  // Checking every byte of 4 GiB would dominate the test; spot checks catch a wrong buffer.
  for (const i of [0, chunk.length >> 1, chunk.length - 1]) {
    if (chunk[i] !== 0) throw new Error("sparse sinks only accept big chunks of zeros");
  }
}

/**
 * Keeps small writes (headers, small entries) and remembers big zero chunks only as holes, so a
 * multi-GiB archive costs a few KiB. `toSource()` reads it back with the holes as zeros.
 */
export class SparseSink implements ByteSink {
  readonly segments: Array<{ offset: number; bytes: Uint8Array }> = [];
  position = 0;
  async write(chunk: Uint8Array): Promise<void> {
    if (chunk.length >= HOLE_THRESHOLD) assertLooksZero(chunk);
    else this.segments.push({ offset: this.position, bytes: chunk.slice() });
    this.position += chunk.length;
  }
  toSource(name = "sparse.zip"): SparseSource {
    return new SparseSource(this.segments, this.position, name);
  }
}

export class SparseSource implements ByteSource {
  constructor(
    private readonly segments: ReadonlyArray<{ offset: number; bytes: Uint8Array }>,
    readonly size: number,
    readonly name: string,
  ) {}
  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new CorruptCheckpointError(`${this.name}: read of ${length} bytes at ${offset} passes the end (${this.size})`);
    }
    const out = (into ?? new Uint8Array(length)).subarray(0, length);
    out.fill(0);
    const end = offset + length;
    for (const s of this.segments) {
      const from = Math.max(offset, s.offset);
      const to = Math.min(end, s.offset + s.bytes.length);
      if (from < to) out.set(s.bytes.subarray(from - s.offset, to - s.offset), from - offset);
    }
    return out;
  }
  async close(): Promise<void> {}
}

/** Streams to a real file; big zero chunks become holes (the file stays sparse on disk). */
export class SparseFileSink implements ByteSink {
  position = 0;
  private constructor(private readonly handle: FileHandle) {}
  static async create(path: string): Promise<SparseFileSink> {
    return new SparseFileSink(await open(path, "w"));
  }
  async write(chunk: Uint8Array): Promise<void> {
    if (chunk.length >= HOLE_THRESHOLD) assertLooksZero(chunk);
    else await this.handle.write(chunk, 0, chunk.length, this.position);
    this.position += chunk.length;
  }
  async close(): Promise<void> {
    await this.handle.truncate(this.position); // materialises a trailing hole, if any
    await this.handle.close();
  }
}

/** Yields `total` zero bytes as reused chunks of `chunk` bytes (the writer must not keep them). */
export function* zeros(total: number, chunk = 64 << 20): Generator<Uint8Array> {
  const buffer = new Uint8Array(Math.min(chunk, Math.max(total, 1)));
  for (let left = total; left > 0; left -= buffer.length) {
    yield left >= buffer.length ? buffer : buffer.subarray(0, left);
  }
}
