import { CorruptCheckpointError, HostTensor, InvalidArgumentError, LazyTensor, type TensorSource } from "@savepoint/core";
import { describe, expect, it } from "vitest";
import type { CopyToDevice } from "../src/staging/copies.js";
import { hostToDevice } from "../src/staging/host-to-device.js";
import { StagingPool } from "../src/staging/staging-pool.js";
import { countingAllocator, flush, manualCopies, pattern } from "./helpers/manual-copies.js";

const CHUNK = 16;

function pool(count = 4) {
  return new StagingPool({ count, bufferBytes: CHUNK, ...countingAllocator() });
}

/** A checkpoint-like source: bytes read by range into the buffer given, with a log of reads. */
function rangeSource(bytes: Uint8Array, log: string[], failAt?: number): LazyTensor {
  return new LazyTensor(
    "uint8",
    [bytes.byteLength],
    async (offset, length, into) => {
      await flush();
      if (offset === failAt) throw new CorruptCheckpointError("ckpt.pt:archive/data/0 is damaged: its CRC32 is wrong.");
      log.push(`read ${offset / CHUNK}`);
      const out = into ?? new Uint8Array(length);
      out.set(bytes.subarray(offset, offset + length));
      return out;
    },
    "ckpt.pt:archive/data/0",
  );
}

/** A source that yields chunks of awkward sizes, not aligned to the staging buffers. */
function oddChunks(bytes: Uint8Array, sizes: number[], byteLength = bytes.byteLength): TensorSource {
  return {
    dtype: "uint8",
    shape: [byteLength],
    byteLength,
    async *chunks() {
      let off = 0;
      for (let i = 0; off < bytes.byteLength; i++) {
        const n = sizes[i % sizes.length]!;
        yield bytes.slice(off, off + n);
        off += n;
      }
    },
  };
}

const memcpy =
  (device: Uint8Array, log?: string[]): CopyToDevice =>
  (from, offset, slot) =>
    new Promise((resolve) =>
      setImmediate(() => {
        device.set(from, offset);
        log?.push(`copy ${offset / CHUNK} slot ${slot.index}`);
        resolve();
      }),
    );

describe("hostToDevice (copies replaced by host memcpy)", () => {
  it("reads checkpoint ranges straight into the staging buffers and copies them in place", async () => {
    const bytes = pattern(7 * CHUNK + 5);
    const device = new Uint8Array(bytes.byteLength);
    const p = pool();
    await hostToDevice({ source: rangeSource(bytes, []), pool: p, copy: memcpy(device) });
    expect(device).toEqual(bytes);
    expect(p.available).toBe(4);
  });

  it("overlaps reading the next range with the copy of the previous one", async () => {
    const bytes = pattern(6 * CHUNK);
    const device = new Uint8Array(bytes.byteLength);
    const copies = manualCopies(device, CHUNK);
    const reads: string[] = [];
    const p = pool(2);
    const done = hostToDevice({ source: rangeSource(bytes, reads), pool: p, copy: copies.toDevice });
    for (let k = 0; k < 10; k++) await flush();
    // Chunk 0's copy is still in flight, yet chunk 1 has been read into the second buffer and
    // launched; with both buffers busy, nothing more is read until a copy finishes.
    expect(reads).toEqual(["read 0", "read 1"]);
    expect(copies.pending.map((c) => `${c.chunk}@${c.slot.index}`)).toEqual(["0@0", "1@1"]);
    copies.completeOldest();
    for (let k = 0; k < 10; k++) await flush();
    // Buffer 0 came back only after its copy was done, and was refilled with chunk 2.
    expect(reads).toEqual(["read 0", "read 1", "read 2"]);
    expect(copies.pending.map((c) => `${c.chunk}@${c.slot.index}`)).toEqual(["1@1", "2@0"]);
    while (copies.pending.length > 0 || reads.length < 6) {
      if (copies.pending.length > 0) copies.completeOldest();
      await flush();
    }
    for (let k = 0; k < 10; k++) {
      if (copies.pending.length > 0) copies.completeOldest();
      await flush();
    }
    await done;
    expect(device).toEqual(bytes);
  });

  it("packs unaligned source chunks into full buffers", async () => {
    const bytes = pattern(5 * CHUNK + 3);
    const device = new Uint8Array(bytes.byteLength);
    const lengths: number[] = [];
    const copy: CopyToDevice = (from, offset, slot) => {
      lengths.push(from.byteLength);
      return memcpy(device)(from, offset, slot);
    };
    await hostToDevice({ source: oddChunks(bytes, [5, 23, 1, 40]), pool: pool(3), copy });
    expect(device).toEqual(bytes);
    expect(lengths).toEqual([16, 16, 16, 16, 16, 3]);
  });

  it("uses HostTensor sources too, and never more than the pool's buffers at once", async () => {
    const bytes = pattern(40 * CHUNK);
    const device = new Uint8Array(bytes.byteLength);
    let inFlight = 0;
    let most = 0;
    const copy: CopyToDevice = (from, offset, slot) => {
      most = Math.max(most, ++inFlight);
      return memcpy(device)(from, offset, slot).then(() => void inFlight--);
    };
    await hostToDevice({ source: new HostTensor("uint8", [bytes.byteLength], bytes), pool: pool(3), copy });
    expect(device).toEqual(bytes);
    expect(most).toBeLessThanOrEqual(3);
    expect(most).toBeGreaterThan(1);
  });

  it("refuses a source that yields too few or too many bytes, returning every buffer", async () => {
    const p = pool();
    const device = new Uint8Array(64);
    await expect(hostToDevice({ source: oddChunks(pattern(40), [16], 48), pool: p, copy: memcpy(device) })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(hostToDevice({ source: oddChunks(pattern(64), [16], 48), pool: p, copy: memcpy(device) })).rejects.toThrow(/more than its 48 bytes/);
    expect(p.available).toBe(4);
  });

  it("a damaged checkpoint fails after the copies in flight settle, with no buffer lost", async () => {
    const bytes = pattern(6 * CHUNK);
    const device = new Uint8Array(bytes.byteLength);
    const p = pool();
    await expect(hostToDevice({ source: rangeSource(bytes, [], 4 * CHUNK), pool: p, copy: memcpy(device) })).rejects.toBeInstanceOf(CorruptCheckpointError);
    expect(p.available).toBe(4);
  });

  it("a failed copy is reported and its buffer returned", async () => {
    const p = pool(2);
    let n = 0;
    const copy: CopyToDevice = () => (n++ === 1 ? Promise.reject(Object.assign(new Error("cudaErrorLaunchFailure"), { code: "cudaErrorLaunchFailure" })) : new Promise((r) => setImmediate(r)));
    await expect(hostToDevice({ source: new HostTensor("uint8", [8 * CHUNK], pattern(8 * CHUNK)), pool: p, copy })).rejects.toThrow(/cudaErrorLaunchFailure/);
    expect(p.available).toBe(2);
  });
});
