import * as tf from "@tensorflow/tfjs-core";
import { SavepointError } from "../../errors.js";
import { HostTensor, isStoredTensor } from "../../tensor/stored-tensor.js";
import { IdleSpare } from "../../tensor/idle-spare.js";
import { StagingRing } from "../../tensor/staging-ring.js";
import type { AssignItem } from "../backend.js";
import { ownStorage, writeVerified } from "./in-place.js";
import { checkShape, isTfjsVariable } from "./tfjs-tensors.js";

/**
 * Loading many variables at once: while one record is copied into its variable, the next ones are
 * already being read (and checksummed) into a reused staging ring, so the disk and the thread pool
 * never wait for the main thread, nor it for them. Records are written out strictly in order, each
 * only once it is complete and verified: when one fails, the variables before it hold their new
 * values and it and those after it are untouched, as with one `assign` after another.
 */

/** The ring holds at most this much; records above half of it go through `assign` one at a time. */
const RING_BYTES = 64 << 20;
/** Records read ahead at most: enough to keep a disk queue full of small records. */
const MAX_AHEAD = 32;
/** The ring is dropped after this long unused. */
const RING_IDLE_MS = 2000;

const rings = new IdleSpare<StagingRing>(RING_IDLE_MS, (r) => r.capacity);

/** A ring for `needed` bytes (rounded up so that loads of similar states settle on one ring). */
function takeRing(needed: number): StagingRing {
  return rings.take(Math.min(needed, RING_BYTES), () => new StagingRing(Math.min(RING_BYTES, Math.ceil(needed / (1 << 20)) * (1 << 20))));
}

/** Whether the item's record can be staged in the ring and copied into the variable's own storage. */
function ringable(item: AssignItem): boolean {
  const { target, source } = item;
  return isTfjsVariable(target) && isStoredTensor(source) && !(source instanceof HostTensor) && source.byteLength > 0 && source.byteLength <= RING_BYTES / 2 && ownStorage(target, source) !== undefined;
}

interface Pending {
  readonly index: number;
  readonly view: Uint8Array;
  readonly bytes: Promise<Uint8Array>;
}

/**
 * Assigns every item in order; `assignOne` handles those the ring does not (other backends' tensors,
 * records in memory or too big, variables whose storage is shared). Shapes are all checked first.
 */
export async function assignPipelined(items: readonly AssignItem[], assignOne: (item: AssignItem) => Promise<void>): Promise<void> {
  for (const { target, source, key } of items) if (isTfjsVariable(target)) checkShape(target.shape, source.shape, key);
  const staged = items.map(ringable);
  let needed = 0;
  for (let i = 0; i < items.length; i++) if (staged[i]) needed += items[i]!.source.byteLength;
  if (needed === 0) {
    for (const item of items) await assignOne(item);
    return;
  }
  const ring = takeRing(needed);
  const pending: Pending[] = [];
  let next = 0;
  const readAhead = (): void => {
    while (pending.length < MAX_AHEAD) {
      while (next < items.length && !staged[next]) next++;
      if (next >= items.length) return;
      const source = items[next]!.source as HostTensor;
      const view = ring.take(source.byteLength);
      if (!view) return;
      const bytes = source.readRange(0, source.byteLength, view);
      bytes.catch(() => {}); // awaited in turn; an early failure is not unhandled meanwhile
      pending.push({ index: next, view, bytes });
      next++;
    }
  };
  try {
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      if (!staged[i]) {
        await assignOne(item);
        continue;
      }
      readAhead();
      const p = pending[0]!;
      if (p.index !== i) throw new SavepointError(`internal error: the load pipeline reached ${item.key} out of order.`, { subject: item.key });
      const bytes = await p.bytes;
      // A reader may hand back its own buffer instead of filling the one it was given.
      if (bytes.buffer !== p.view.buffer || bytes.byteOffset !== p.view.byteOffset) p.view.set(bytes.subarray(0, p.view.byteLength));
      writeVerified(item.target as tf.Variable, item.source, p.view);
      pending.shift();
      ring.release();
      readAhead();
    }
  } finally {
    // No read may still be filling the ring when it is handed to the next load.
    if (pending.length > 0) await Promise.allSettled(pending.map((p) => p.bytes));
    ring.clear();
    rings.give(ring);
  }
}
