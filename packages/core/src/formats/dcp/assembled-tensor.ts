import { itemSize, type DType } from "../../dtype.js";
import { LazyTensor } from "../../tensor/stored-tensor.js";
import { numel } from "../../tensor/tensor-source.js";
import { contiguousStrides } from "../torch/strided-tensor.js";
import type { ChunkBytes } from "./dcp-chunk.js";

/** A chunk as a box of the full tensor, with its bytes. */
export interface PlacedChunk {
  readonly offsets: readonly number[];
  readonly sizes: readonly number[];
  readonly read: ChunkBytes;
}

/**
 * One chunk laid over the full tensor's row-major order. Its elements form "runs": stretches
 * contiguous both in the chunk and in the full tensor (the trailing dimensions the chunk spans
 * entirely merge into one run). Run `r` starts at chunk element `r * runLength`, and its full
 * start grows with `r`, so the runs a range touches are found by binary search.
 */
class ChunkPlacement {
  readonly runLength: number;
  readonly runs: number;
  /** Dimensions before the run dimension: they index the runs. */
  readonly #outer: number;
  readonly #fullStrides: readonly number[];

  constructor(
    readonly chunk: PlacedChunk,
    shape: readonly number[],
  ) {
    const rank = shape.length;
    this.#fullStrides = contiguousStrides(shape);
    let k = rank - 1;
    while (k > 0 && chunk.sizes[k] === shape[k]) k--;
    this.#outer = Math.max(k, 0);
    this.runLength = rank === 0 ? 1 : chunk.sizes[this.#outer]! * (this.#fullStrides[this.#outer] ?? 1);
    this.runs = this.runLength === 0 ? 0 : numel(chunk.sizes) / this.runLength;
  }

  /** Full-tensor element index where run `r` starts. */
  start(r: number): number {
    let flat = 0;
    for (let d = this.#outer - 1; d >= 0; d--) {
      const n = this.chunk.sizes[d]!;
      flat += (this.chunk.offsets[d]! + (r % n)) * this.#fullStrides[d]!;
      r = Math.floor(r / n);
    }
    for (let d = this.#outer; d < this.chunk.offsets.length; d++) flat += this.chunk.offsets[d]! * this.#fullStrides[d]!;
    return flat;
  }

  /** First run ending after element `e`. */
  firstRunAfter(e: number): number {
    let lo = 0;
    let hi = this.runs;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      if (this.start(mid) + this.runLength > e) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** Last run starting before element `e` (-1 when none). */
  lastRunBefore(e: number): number {
    let lo = -1;
    let hi = this.runs - 1;
    while (lo < hi) {
      const mid = Math.floor((lo + hi + 1) / 2);
      if (this.start(mid) < e) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}

/**
 * A lazy tensor reassembled from DCP chunks. A byte range reads only the chunks that overlap it,
 * each with one ranged read of the span it needs, and places their runs into row-major order.
 * The chunks must cover the tensor exactly once (`readDcpMetadata` checks it).
 */
export function assembledTensor(dtype: DType, shape: readonly number[], chunks: readonly PlacedChunk[], location: string): LazyTensor {
  const size = itemSize(dtype);
  const placements = chunks.filter((c) => numel(c.sizes) > 0).map((c) => new ChunkPlacement(c, shape));

  const fill = async (p: ChunkPlacement, e0: number, e1: number, out: Uint8Array): Promise<void> => {
    const ra = p.firstRunAfter(e0);
    const rb = p.lastRunBefore(e1);
    if (ra >= p.runs || rb < ra) return; // no overlap: this chunk is not read at all
    const len = p.runLength;
    const lo = ra * len + Math.max(0, e0 - p.start(ra));
    const hi = rb * len + Math.min(len, e1 - p.start(rb));
    const span = await p.chunk.read(lo * size, (hi - lo) * size);
    for (let r = ra; r <= rb; r++) {
      const s = p.start(r);
      const a = Math.max(s, e0);
      const b = Math.min(s + len, e1);
      if (a >= b) continue;
      const from = (r * len + (a - s) - lo) * size;
      out.set(span.subarray(from, from + (b - a) * size), (a - e0) * size);
    }
  };

  return new LazyTensor(
    dtype,
    shape,
    async (offset, length, into) => {
      // Work in whole elements; a range that splits elements is cut from the enclosing ones.
      const e0 = Math.floor(offset / size);
      const e1 = Math.ceil((offset + length) / size);
      const aligned = offset % size === 0 && length % size === 0;
      const out = aligned ? (into ?? new Uint8Array(length)) : new Uint8Array((e1 - e0) * size);
      await Promise.all(placements.map((p) => fill(p, e0, e1, out)));
      if (aligned) return out;
      const cut = out.subarray(offset - e0 * size, offset - e0 * size + length);
      if (!into) return cut;
      into.set(cut);
      return into;
    },
    location,
  );
}
