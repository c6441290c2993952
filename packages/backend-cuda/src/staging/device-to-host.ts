import { chunkRanges } from "./chunk-ranges.js";
import { rethrow, settle, type CopyToHost, type InFlight } from "./copies.js";
import type { StagingPool, StagingSlot } from "./staging-pool.js";

export interface DeviceToHostOptions {
  byteLength: number;
  /** The consumer's bound on chunk size; chunks are also at most one staging buffer. */
  chunkBytes: number;
  pool: StagingPool;
  copy: CopyToHost;
  /** Most copies in flight for this transfer (default: every buffer of the pool). */
  depth?: number;
}

/**
 * Streams a device tensor to the host through the pool's pinned buffers, in order.
 *
 * While the consumer holds chunk N (e.g. writes it to disk), the copies of chunks N+1 ... N+depth-1
 * are already queued on other buffers' streams, so the device→host link and the consumer are busy
 * at the same time. A chunk's buffer is reused only after the consumer asks for the next chunk,
 * which is when the `TensorSource` contract says it is done with it.
 *
 * Stopping early (`break`, an error) waits for the copies in flight before returning their
 * buffers: the DMA engine must not write into a buffer someone else has been handed.
 *
 * Transfers sharing a pool each progress with at least one buffer, but a consumer that holds a
 * chunk must not wait for another transfer of the same pool to finish: that one may need the
 * buffers this one holds (give each transfer a `depth` below the pool size if it must).
 */
export async function* deviceToHost(options: DeviceToHostOptions): AsyncGenerator<Uint8Array, void, undefined> {
  const { pool, copy } = options;
  const ranges = chunkRanges(options.byteLength, Math.min(options.chunkBytes, pool.bufferBytes));
  const depth = Math.max(1, Math.min(options.depth ?? pool.size, pool.size));
  const inFlight: InFlight[] = [];
  let next = 0;
  let held: StagingSlot | undefined;
  try {
    for (;;) {
      if (held) {
        pool.release(held);
        held = undefined;
      }
      while (next < ranges.length && inFlight.length < depth) {
        // Wait for a buffer only while holding none; holding some, take only free ones, so two
        // transfers sharing the pool can never wait on each other.
        const slot = inFlight.length === 0 ? await pool.acquire() : pool.tryAcquire();
        if (!slot) break;
        const range = ranges[next++]!;
        const view = slot.bytes.subarray(0, range.length);
        let started: Promise<void>;
        try {
          started = copy(range.offset, view, slot);
        } catch (error) {
          started = Promise.reject(error);
        }
        inFlight.push({ slot, length: range.length, done: settle(started) });
      }
      const head = inFlight.shift();
      if (!head) return;
      held = head.slot;
      rethrow(await head.done);
      yield head.slot.bytes.subarray(0, head.length);
    }
  } finally {
    await Promise.all(inFlight.map((f) => f.done));
    for (const f of inFlight) pool.release(f.slot);
    if (held) pool.release(held);
  }
}
