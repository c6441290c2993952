import { InvalidArgumentError, numel, type Collective } from "@savepoint/core";
import { rangeElements, rowRange } from "./shard-rows.js";

/** A typed array of a weight's elements. */
export type HostArray = Float32Array | Int32Array | Uint8Array;

/**
 * The most bytes one all-gather carries, all ranks' parts together. A collective message is held
 * whole in memory on every side (and `savepoint run`'s coordinator refuses frames over 1 GiB), so
 * weights are gathered in batches of this size, a large weight in pieces.
 * @default 64 MiB
 */
export const GATHER_BATCH_BYTES = 64 << 20;

/** One weight to gather: its full shape and this rank's rows (dimension 0 split as `rowRange`). */
export interface RowsToGather {
  readonly key: string;
  readonly shape: readonly number[];
  readonly rows: HostArray;
}

/** Piece `piece` of `pieces` of rank `rank`'s rows of a weight: element bounds within those rows. */
function pieceBounds(rowsElements: number, piece: number, pieces: number): [number, number] {
  return [Math.floor((rowsElements * piece) / pieces), Math.floor((rowsElements * (piece + 1)) / pieces)];
}

/**
 * Every rank's rows of each weight, put together into the full weights (a collective operation:
 * every rank calls it with the same weights in the same order). Bounded messages: at most
 * `batchBytes` per all-gather.
 */
export async function gatherRows(collective: Collective, tag: string, weights: readonly RowsToGather[], batchBytes = GATHER_BATCH_BYTES): Promise<HostArray[]> {
  const world = collective.worldSize;
  const wholes = weights.map((w) => new (w.rows.constructor as new (n: number) => HostArray)(numel(w.shape)));
  // Units of work: piece j of k of weight i, each at most batchBytes in total over the ranks.
  const units: { weight: number; piece: number; pieces: number; bytes: number }[] = [];
  weights.forEach((w, i) => {
    const bytes = wholes[i]!.byteLength;
    const pieces = Math.max(1, Math.ceil(bytes / batchBytes));
    for (let j = 0; j < pieces; j++) units.push({ weight: i, piece: j, pieces, bytes: bytes / pieces });
  });
  const batches: (typeof units)[] = [];
  let filled = 0; // bytes in the last batch
  for (const u of units) {
    const last = batches[batches.length - 1];
    if (last && filled + u.bytes <= batchBytes) {
      last.push(u);
      filled += u.bytes;
    } else {
      batches.push([u]);
      filled = u.bytes;
    }
  }
  for (let b = 0; b < batches.length; b++) {
    const batch = batches[b]!;
    // Copies, not views: a view would carry its whole buffer through the collective.
    const mine = batch.map((u) => {
      const rows = weights[u.weight]!.rows;
      const [lo, hi] = pieceBounds(rows.length, u.piece, u.pieces);
      return rows.slice(lo, hi);
    });
    const all = await collective.allGather<HostArray[]>(batches.length === 1 ? tag : `${tag} (part ${b + 1} of ${batches.length})`, mine);
    batch.forEach((u, n) => {
      const w = weights[u.weight]!;
      const perRow = rangeElements(w.shape, { start: 0, rows: 1 });
      for (let r = 0; r < world; r++) {
        const range = rowRange(w.shape[0]!, r, world);
        const [lo, hi] = pieceBounds(rangeElements(w.shape, range), u.piece, u.pieces);
        const part = all[r]?.[n];
        if (!part || part.length !== hi - lo) {
          throw new InvalidArgumentError(`gathering ${w.key}: rank ${r} holds ${part ? part.length : "no"} elements of its piece, ${hi - lo} expected. Every rank must wrap the same model.`, { subject: w.key });
        }
        wholes[u.weight]!.set(part, range.start * perRow + lo);
      }
    });
  }
  return wholes;
}
