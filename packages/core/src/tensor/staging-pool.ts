import { checkDepth, isPlainObject } from "../tree/plain.js";
import { copyMarks } from "../tree/python-values.js";
import { InvalidArgumentError } from "../errors.js";
import { HostTensor, StoredTensor } from "./stored-tensor.js";
import { DEFAULT_CHUNK_BYTES, isTensorSource, type TensorSource } from "./tensor-source.js";
import { uninitializedBytes } from "./typed-arrays.js";
import type { DType } from "../dtype.js";

/** Tensors of at least this size are staged by reference when their source offers a snapshot. */
export const SNAPSHOT_MIN_BYTES = 1 << 20;

/** Storage that a staged snapshot refers to, with how many stagings hold it. */
const pinned = new WeakMap<ArrayBufferLike, number>();

/**
 * True while an async save holds a snapshot of this storage: whoever would write into tensor
 * storage in place (loading into a variable) must leave it alone and assign fresh storage instead.
 */
export function isPinned(buffer: ArrayBufferLike): boolean {
  return (pinned.get(buffer) ?? 0) > 0;
}

function pin(buffer: ArrayBufferLike, delta: 1 | -1): void {
  const n = (pinned.get(buffer) ?? 0) + delta;
  if (n > 0) pinned.set(buffer, n);
  else pinned.delete(buffer);
}

/** Largest single staging buffer: bigger tensors are staged in pieces of this size. */
export const STAGING_PIECE = 256 << 20;

/** A staged tensor held in several host buffers, in order (for tensors over {@link STAGING_PIECE}). */
class PiecewiseHostTensor extends StoredTensor {
  readonly #pieces: Uint8Array[];

  constructor(dtype: DType, shape: readonly number[], pieces: Uint8Array[]) {
    super(dtype, shape);
    this.#pieces = pieces;
  }

  async readRange(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    if (offset < 0 || length < 0 || offset + length > this.byteLength) {
      throw new InvalidArgumentError(`range [${offset}, ${offset + length}) is outside a staged tensor of ${this.byteLength} bytes.`);
    }
    const out = into ?? new Uint8Array(length);
    for (let done = 0; done < length; ) {
      const at = offset + done;
      const piece = this.#pieces[Math.floor(at / STAGING_PIECE)]!;
      const from = at % STAGING_PIECE;
      const n = Math.min(length - done, piece.byteLength - from);
      out.set(piece.subarray(from, from + n), done);
      done += n;
    }
    return out;
  }

  override async *chunks(chunkBytes = DEFAULT_CHUNK_BYTES): AsyncIterable<Uint8Array> {
    // Views of the pieces, never crossing one: no copies.
    for (const piece of this.#pieces) {
      for (let off = 0; off < piece.byteLength; off += chunkBytes) yield piece.subarray(off, Math.min(off + chunkBytes, piece.byteLength));
    }
  }
}

/**
 * Host buffers for async saves: `stage` copies every tensor of a tree into host memory (so
 * training may change the originals while the write goes on), and `release` returns the buffers
 * for the next save, which reuses them when sizes match instead of allocating again. A big tensor
 * whose source offers an immutable `snapshot()` (tfjs CPU storage) is held by reference instead:
 * copying a GiB costs about as much as writing it.
 */
export class StagingPool {
  readonly #free = new Map<number, Uint8Array[]>();

  /** A copy of `tree` whose tensors are HostTensors over pooled buffers; call `release` after writing. */
  async stage(tree: unknown): Promise<{ tree: unknown; release(): void }> {
    const used: Uint8Array[] = [];
    const held: ArrayBufferLike[] = [];
    const copies = new Map<TensorSource, TensorSource>();
    const visit = async (v: unknown, depth: number): Promise<unknown> => {
      checkDepth(depth, "state");
      if (isTensorSource(v)) {
        let copy = copies.get(v);
        const snap = !copy && typeof v.snapshot === "function" ? v.snapshot() : undefined;
        if (!copy && snap && v.byteLength >= SNAPSHOT_MIN_BYTES) {
          // Immutable host storage: hold it instead of copying it (a GiB copy is most of a save).
          const buffer = snap instanceof HostTensor ? snap.raw.buffer : undefined;
          if (buffer) {
            pin(buffer, 1);
            held.push(buffer);
          }
          copy = snap;
          copies.set(v, copy);
        }
        if (!copy) {
          // One buffer per tensor; a tensor over STAGING_PIECE is held in several, so no single
          // allocation ever exceeds it (browsers cap ArrayBuffers near 2 GiB).
          const pieces: Uint8Array[] = [];
          for (let at = 0; at < v.byteLength || pieces.length === 0; at += STAGING_PIECE) {
            const buf = this.#take(Math.min(STAGING_PIECE, v.byteLength - at));
            used.push(buf);
            pieces.push(buf);
          }
          let piece = 0;
          let off = 0;
          let total = 0;
          // Bytes already in host memory are copied at once; other sources stream their chunks.
          const raw = snap instanceof HostTensor ? snap.raw : v instanceof HostTensor ? v.raw : undefined;
          for await (let chunk of raw ? [raw] : v.chunks()) {
            total += chunk.byteLength;
            while (chunk.byteLength > 0) {
              const dst = pieces[piece]!;
              const n = Math.min(chunk.byteLength, dst.byteLength - off);
              if (n === 0) throw new InvalidArgumentError(`a tensor streamed more than its ${v.byteLength} bytes while being staged; its chunks() disagrees with its dtype and shape.`);
              dst.set(n === chunk.byteLength ? chunk : chunk.subarray(0, n), off);
              chunk = chunk.subarray(n);
              off += n;
              if (off === dst.byteLength && piece + 1 < pieces.length) {
                piece++;
                off = 0;
              }
            }
          }
          if (total !== v.byteLength) throw new InvalidArgumentError(`a tensor streamed ${total} of its ${v.byteLength} bytes while being staged; its chunks() ended early.`);
          copy = pieces.length === 1 ? new HostTensor(v.dtype, v.shape, pieces[0]!) : new PiecewiseHostTensor(v.dtype, v.shape, pieces);
          copies.set(v, copy);
        }
        return copy;
      }
      if (Array.isArray(v)) {
        const out: unknown[] = [];
        for (const x of v) out.push(await visit(x, depth + 1));
        return copyMarks(v, out);
      }
      if (isPlainObject(v)) {
        const out: Record<string, unknown> = {};
        for (const [k, x] of Object.entries(v)) out[k] = await visit(x, depth + 1);
        return copyMarks(v, out);
      }
      // The file is encoded after the caller has its handle back: containers it could still
      // change are copied too.
      if (v instanceof Map) {
        const out = new Map();
        for (const [k, x] of v) out.set(k, await visit(x, depth + 1));
        return out;
      }
      if (v instanceof Set) {
        const out = new Set();
        for (const x of v) out.add(await visit(x, depth + 1));
        return out;
      }
      if (v instanceof Uint8Array) return v.slice();
      return v;
    };
    try {
      const staged = await visit(tree, 0);
      let released = false;
      return {
        tree: staged,
        release: () => {
          if (released) return;
          released = true;
          for (const b of held) pin(b, -1);
          this.#give(used);
        },
      };
    } catch (err) {
      for (const b of held) pin(b, -1);
      this.#give(used);
      throw err;
    }
  }

  /** Bytes held for reuse. */
  get pooledBytes(): number {
    let n = 0;
    for (const [size, list] of this.#free) n += size * list.length;
    return n;
  }

  /** Drops every pooled buffer. */
  clear(): void {
    this.#free.clear();
  }

  #take(size: number): Uint8Array {
    return this.#free.get(size)?.pop() ?? uninitializedBytes(size);
  }

  #give(buffers: Uint8Array[]): void {
    for (const b of buffers) {
      const list = this.#free.get(b.byteLength) ?? [];
      list.push(b);
      this.#free.set(b.byteLength, list);
    }
  }
}
