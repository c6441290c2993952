import { InvalidArgumentError, type TensorSource } from "@savepoint/core";
import { chunkRanges } from "./chunk-ranges.js";
import { rethrow, settle, type CopyToDevice, type InFlight } from "./copies.js";
import type { StagingPool, StagingSlot } from "./staging-pool.js";

export interface HostToDeviceOptions {
  source: TensorSource;
  pool: StagingPool;
  copy: CopyToDevice;
  /** Most copies in flight for this transfer (default: every buffer of the pool). */
  depth?: number;
}

/** A source that can read a byte range straight into a buffer we give it (`StoredTensor`). */
interface RangeSource extends TensorSource {
  readRange(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array>;
}

function readsRanges(source: TensorSource): source is RangeSource {
  return typeof (source as Partial<RangeSource>).readRange === "function";
}

/**
 * Streams a tensor's bytes from the host into device memory through the pool's pinned buffers:
 * each buffer is filled (a checkpoint range read straight into it, or the source's chunks packed
 * into it), then copied to the device asynchronously, so reading chunk N+1 overlaps the copy of
 * chunk N. A buffer is refilled only after its previous copy has finished. Resolves when every
 * byte is on the device; on failure, waits for the copies in flight before rethrowing.
 */
export async function hostToDevice(options: HostToDeviceOptions): Promise<void> {
  const { source, pool, copy } = options;
  const step = pool.bufferBytes;
  const depth = Math.max(1, Math.min(options.depth ?? pool.size, pool.size));
  const inFlight: InFlight[] = [];
  let filling: StagingSlot | undefined;
  let offset = 0;

  // A free buffer, else (at the depth limit, or none free) the oldest in-flight one once done.
  const take = async (): Promise<StagingSlot> => {
    if (inFlight.length < depth) {
      const slot = inFlight.length === 0 ? await pool.acquire() : pool.tryAcquire();
      if (slot) return slot;
    }
    const oldest = inFlight.shift()!;
    filling = oldest.slot; // ours again, whatever the outcome, so it is released on failure
    rethrow(await oldest.done);
    return oldest.slot;
  };

  // Hands a filled buffer to the copy engine; until this returns, the caller still owns it.
  const launch = (slot: StagingSlot, length: number): void => {
    if (offset + length > source.byteLength) throw new InvalidArgumentError(`a ${source.dtype} tensor source of shape [${source.shape.join(", ")}] yielded more than its ${source.byteLength} bytes.`);
    let started: Promise<void>;
    try {
      started = copy(slot.bytes.subarray(0, length), offset, slot);
    } catch (error) {
      started = Promise.reject(error);
    }
    inFlight.push({ slot, length, done: settle(started) });
    offset += length;
  };

  try {
    if (readsRanges(source)) {
      for (const range of chunkRanges(source.byteLength, step)) {
        filling = await take();
        const view = filling.bytes.subarray(0, range.length);
        const got = await source.readRange(range.offset, range.length, view);
        if (got.buffer !== view.buffer || got.byteOffset !== view.byteOffset) view.set(got.subarray(0, range.length));
        launch(filling, range.length);
        filling = undefined;
      }
    } else {
      let used = 0;
      for await (const chunk of source.chunks(step)) {
        for (let pos = 0; pos < chunk.byteLength; ) {
          if (!filling) {
            filling = await take();
            used = 0;
          }
          const n = Math.min(step - used, chunk.byteLength - pos);
          filling.bytes.set(chunk.subarray(pos, pos + n), used);
          used += n;
          pos += n;
          if (used === step) {
            launch(filling, used);
            filling = undefined;
          }
        }
      }
      if (filling && used > 0) {
        launch(filling, used);
        filling = undefined;
      }
    }
    if (offset !== source.byteLength) throw new InvalidArgumentError(`a ${source.dtype} tensor source of shape [${source.shape.join(", ")}] yielded ${offset} of its ${source.byteLength} bytes.`);
    while (inFlight.length > 0) {
      const f = inFlight.shift()!;
      filling = f.slot;
      rethrow(await f.done);
      pool.release(f.slot);
      filling = undefined;
    }
  } finally {
    await Promise.all(inFlight.map((f) => f.done));
    for (const f of inFlight) pool.release(f.slot);
    if (filling) pool.release(filling);
  }
}
