import type { StagingSlot } from "../../src/staging/staging-pool.js";

/** Lets pending promise callbacks run (the scheduler's awaits) before the test looks again. */
export const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export interface ManualCopy {
  /** Chunk number: offset / chunk size. */
  chunk: number;
  offset: number;
  view: Uint8Array;
  slot: StagingSlot;
  /** Moves the bytes (host memcpy) and resolves the copy. */
  complete(): void;
  fail(error: unknown): void;
}

/**
 * Copy functions whose copies finish only when the test says so: host memcpy between a fake
 * device array and the staging buffers, with a log of starts and completions in order.
 */
export function manualCopies(device: Uint8Array, chunkBytes: number) {
  const pending: ManualCopy[] = [];
  const events: string[] = [];
  const started = (kind: string, offset: number, view: Uint8Array, slot: StagingSlot, move: () => void): Promise<void> =>
    new Promise((resolve, reject) => {
      const chunk = offset / chunkBytes;
      events.push(`${kind}-start ${chunk} slot ${slot.index}`);
      const entry: ManualCopy = {
        chunk,
        offset,
        view,
        slot,
        complete: () => {
          pending.splice(pending.indexOf(entry), 1);
          move();
          events.push(`${kind}-done ${chunk}`);
          resolve();
        },
        fail: (error) => {
          pending.splice(pending.indexOf(entry), 1);
          events.push(`${kind}-failed ${chunk}`);
          reject(error);
        },
      };
      pending.push(entry);
    });
  return {
    pending,
    events,
    toHost: (offset: number, into: Uint8Array, slot: StagingSlot) => started("d2h", offset, into, slot, () => into.set(device.subarray(offset, offset + into.byteLength))),
    toDevice: (from: Uint8Array, offset: number, slot: StagingSlot) => started("h2d", offset, from, slot, () => device.set(from, offset)),
    /** Completes the oldest pending copy. */
    completeOldest(): void {
      pending[0]!.complete();
    },
  };
}

/** Bytes 0, 1, 2, ... (mod 251, so chunks differ from each other). */
export function pattern(n: number, seed = 0): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i + seed) % 251);
}

/** A pool allocator that counts allocations and frees. */
export function countingAllocator() {
  const made: number[] = [];
  const freed: number[] = [];
  return {
    made,
    freed,
    allocate: (bytes: number, index: number) => {
      made.push(index);
      return new Uint8Array(bytes);
    },
    free: (_b: Uint8Array, index: number) => {
      freed.push(index);
    },
  };
}
