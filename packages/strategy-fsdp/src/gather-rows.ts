import { open, rm } from "node:fs/promises";
import { bytesOf, InvalidArgumentError, numel, SavepointError, type Collective } from "@savepoint/core";
import { exchangeFile } from "./file-exchange.js";
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
  /**
   * Where the whole weight goes (the full variable's own storage, say), of the rows' type and
   * `numel(shape)` elements; a new array when absent. Filled as the rows arrive, so a gather that
   * fails leaves it partly written.
   */
  readonly into?: HostArray;
}

/** Piece `piece` of `pieces` of rank `rank`'s rows of a weight: element bounds within those rows. */
function pieceBounds(rowsElements: number, piece: number, pieces: number): [number, number] {
  return [Math.floor((rowsElements * piece) / pieces), Math.floor((rowsElements * (piece + 1)) / pieces)];
}

/** Options of {@link gatherRows}. */
export interface GatherOptions {
  /** The most bytes one all-gather carries. @default GATHER_BATCH_BYTES */
  readonly batchBytes?: number;
  /** Pass the rows through files every rank can read (see `filesReachEveryRank`). @default false */
  readonly throughFiles?: boolean;
  /** Through files: the most bytes one read or write call moves. @default FILE_PIECE (64 MiB) */
  readonly fileCallBytes?: number;
}

/** File reads and writes move at most this many bytes per call (one call cannot move 2 GiB)... */
const FILE_PIECE = 64 << 20;
/** ...in at most this many buffers (below every system's IOV_MAX): a model's thousands of small weights take a few calls, not one each. */
const FILE_BUFFERS = 512;

/**
 * `buffers` cut into runs of at most `limit` bytes and FILE_BUFFERS buffers (a buffer over
 * `limit` is cut in pieces), each moved by one readv / writev; `first` is the index of the
 * buffer a run starts in, for messages.
 */
function* vectors(buffers: readonly Uint8Array[], limit: number): Generator<{ buffers: Uint8Array[]; bytes: number; first: number }> {
  let run: { buffers: Uint8Array[]; bytes: number; first: number } = { buffers: [], bytes: 0, first: 0 };
  for (let i = 0; i < buffers.length; i++) {
    const b = buffers[i]!;
    for (let at = 0; at < b.byteLength; ) {
      if (run.buffers.length === 0) run.first = i;
      const n = Math.min(b.byteLength - at, limit - run.bytes);
      run.buffers.push(b.subarray(at, at + n));
      run.bytes += n;
      at += n;
      if (run.bytes === limit || run.buffers.length === FILE_BUFFERS) {
        yield run;
        run = { buffers: [], bytes: 0, first: i };
      }
    }
  }
  if (run.bytes > 0) yield run;
}

/** The part of `buffers` after its first `done` bytes (a short readv / writev continues there). */
function unwritten(buffers: readonly Uint8Array[], done: number): Uint8Array[] {
  let skip = done;
  let i = 0;
  while (i < buffers.length && skip >= buffers[i]!.byteLength) skip -= buffers[i++]!.byteLength;
  return i < buffers.length ? [buffers[i]!.subarray(skip), ...buffers.slice(i + 1)] : [];
}

/**
 * Moves `buffers`, laid end to end from the start of a file, with `call` (a readv or writev at a
 * position, returning the bytes it moved) in runs of `vectors`, continuing short calls; a call that
 * moves nothing means the file ended: `ended` names the first weight of that run.
 */
async function moveVectored(buffers: readonly Uint8Array[], limit: number, call: (buffers: Uint8Array[], position: number) => Promise<number>, ended: (first: number) => Error): Promise<void> {
  let at = 0;
  for (const run of vectors(buffers, limit)) {
    for (let done = 0; done < run.bytes; ) {
      const moved = await call(unwritten(run.buffers, done), at + done);
      if (moved === 0) throw ended(run.first);
      done += moved;
    }
    at += run.bytes;
  }
}

/**
 * Every rank's rows of each weight, put together into the full weights (a collective operation:
 * every rank calls it with the same weights in the same order). Through files when the ranks can
 * read each other's, else through the collective in bounded messages (at most `batchBytes` each).
 */
export async function gatherRows(collective: Collective, tag: string, weights: readonly RowsToGather[], options: GatherOptions = {}): Promise<HostArray[]> {
  const wholes = weights.map((w) => {
    const n = numel(w.shape);
    if (!w.into) return new (w.rows.constructor as new (n: number) => HostArray)(n);
    if (w.into.constructor !== w.rows.constructor || w.into.length !== n) {
      throw new InvalidArgumentError(`gathering ${w.key}: the destination holds ${w.into.length} ${w.into.constructor.name} elements, ${n} ${w.rows.constructor.name} elements expected.`, { subject: w.key });
    }
    return w.into;
  });
  if (options.throughFiles) await gatherThroughFiles(collective, tag, weights, wholes, options.fileCallBytes ?? FILE_PIECE);
  else await gatherThroughCollective(collective, tag, weights, wholes, options.batchBytes ?? GATHER_BATCH_BYTES);
  return wholes;
}

/** Where rank `r`'s rows of weight `w` go in the whole weight, as bytes. */
function rowsBytes(w: RowsToGather, r: number, world: number, whole: HostArray): Uint8Array {
  const range = rowRange(w.shape[0]!, r, world);
  const per = rangeElements(w.shape, { start: 0, rows: 1 }) * whole.BYTES_PER_ELEMENT;
  return new Uint8Array(whole.buffer, whole.byteOffset + range.start * per, range.rows * per);
}

/** The message each rank sends when passing rows through files: its file and how many elements of each weight it holds. */
type FileOffer = { file: string; elements: number[] } | { error: string };

/**
 * Each rank writes its rows of every weight, one after another, into a file of its own; the
 * ranks swap the file names (and row counts, checked before anything is read), each reads the
 * others' files into the whole weights, and removes its own once every rank has read it.
 */
async function gatherThroughFiles(collective: Collective, tag: string, weights: readonly RowsToGather[], wholes: HostArray[], callBytes: number): Promise<void> {
  const { rank, worldSize: world } = collective;
  const mine = exchangeFile();
  let offer: FileOffer = { file: mine, elements: weights.map((w) => w.rows.length) };
  try {
    const out = await open(mine, "w");
    try {
      await moveVectored(
        weights.map((w) => bytesOf(w.rows)),
        callBytes,
        async (buffers, position) => (await out.writev(buffers, position)).bytesWritten,
        (first) => new SavepointError(`gathering ${weights[first]!.key}: writing ${mine} made no progress.`, { subject: weights[first]!.key }),
      );
    } finally {
      await out.close();
    }
  } catch (err) {
    offer = { error: `rank ${rank} could not write its rows to ${mine}: ${(err as Error).message}` };
  }
  try {
    const offers = await collective.allGather<FileOffer>(`${tag}: rows in files`, offer);
    try {
      const failed = offers.find((o): o is { error: string } => "error" in o);
      if (failed) throw new SavepointError(`gathering weights (${tag}): ${failed.error}.`);
      // Every rank must hold the rows the split gives it, or the files would be read wrongly.
      offers.forEach((o, r) => {
        weights.forEach((w, i) => {
          const expected = rangeElements(w.shape, rowRange(w.shape[0]!, r, world));
          const held = (o as { elements: number[] }).elements[i];
          if (held !== expected) throw new InvalidArgumentError(`gathering ${w.key}: rank ${r} holds ${held ?? "no"} elements of it, ${expected} expected. Every rank must wrap the same model.`, { subject: w.key });
        });
      });
      for (let r = 0; r < world; r++) {
        if (r === rank) {
          weights.forEach((w, i) => rowsBytes(w, r, world, wholes[i]!).set(bytesOf(w.rows)));
          continue;
        }
        const file = (offers[r] as { file: string }).file;
        const input = await open(file, "r");
        try {
          await moveVectored(
            weights.map((w, i) => rowsBytes(w, r, world, wholes[i]!)),
            callBytes,
            async (buffers, position) => (await input.readv(buffers, position)).bytesRead,
            (first) => new SavepointError(`gathering ${weights[first]!.key} and the weights after it: rank ${r}'s file ${file} ends early (removed or truncated while being read).`, { subject: weights[first]!.key }),
          );
        } finally {
          await input.close();
        }
      }
    } finally {
      // No file is removed while another rank may still be reading it.
      await collective.barrier(`${tag}: rows read`);
    }
  } finally {
    await rm(mine, { force: true });
  }
}

async function gatherThroughCollective(collective: Collective, tag: string, weights: readonly RowsToGather[], wholes: HostArray[], batchBytes: number): Promise<void> {
  const world = collective.worldSize;
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
}
