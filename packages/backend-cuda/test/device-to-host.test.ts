import { describe, expect, it } from "vitest";
import type { CopyToHost } from "../src/staging/copies.js";
import { deviceToHost } from "../src/staging/device-to-host.js";
import { StagingPool } from "../src/staging/staging-pool.js";
import { countingAllocator, flush, manualCopies, pattern } from "./helpers/manual-copies.js";

const CHUNK = 16;

function setup(byteLength: number, buffers = 4) {
  const device = pattern(byteLength);
  const pool = new StagingPool({ count: buffers, bufferBytes: CHUNK, ...countingAllocator() });
  const copies = manualCopies(device, CHUNK);
  const stream = deviceToHost({ byteLength, chunkBytes: 1 << 20, pool, copy: copies.toHost });
  return { device, pool, copies, it: stream[Symbol.asyncIterator]() };
}

/** A copy function that completes every copy on the next turn of the event loop. */
function memcpyCopies(device: Uint8Array, log?: string[]): CopyToHost {
  return (offset, into, slot) =>
    new Promise((resolve) =>
      setImmediate(() => {
        into.set(device.subarray(offset, offset + into.byteLength));
        log?.push(`copy ${offset} slot ${slot.index}`);
        resolve();
      }),
    );
}

describe("deviceToHost (copies replaced by host memcpy)", () => {
  it("yields the device bytes in order, in chunks of at most one buffer and chunkBytes", async () => {
    const device = pattern(100);
    for (const [bufferBytes, chunkBytes, expected] of [
      [16, 1 << 20, 16],
      [16, 7, 7],
    ] as const) {
      const pool = new StagingPool({ count: 3, bufferBytes, ...countingAllocator() });
      const parts: Uint8Array[] = [];
      for await (const c of deviceToHost({ byteLength: 100, chunkBytes, pool, copy: memcpyCopies(device) })) {
        expect(c.byteLength).toBeLessThanOrEqual(expected);
        parts.push(c.slice());
      }
      expect(Buffer.concat(parts)).toEqual(Buffer.from(device));
      expect(parts.slice(0, -1).every((p) => p.byteLength === expected)).toBe(true);
      expect(pool.available).toBe(3);
    }
  });

  it("has the next chunks' copies in flight while the consumer holds a chunk", async () => {
    const { copies, it: chunks } = setup(6 * CHUNK);
    const first = chunks.next();
    await flush();
    // Before anything is consumed, one copy per buffer is queued: chunks 0-3 on slots 0-3.
    expect(copies.events).toEqual(["d2h-start 0 slot 0", "d2h-start 1 slot 1", "d2h-start 2 slot 2", "d2h-start 3 slot 3"]);
    copies.completeOldest();
    const c0 = await first;
    expect(c0.value).toEqual(pattern(6 * CHUNK).subarray(0, CHUNK));
    // The consumer holds chunk 0 (say, writing it to disk): chunks 1-3 are still being copied,
    // and chunk 0's buffer is not reused yet.
    expect(copies.pending.map((p) => p.chunk)).toEqual([1, 2, 3]);
    copies.completeOldest(); // chunk 1 lands while chunk 0 is being written
    await flush();
    expect(copies.events.filter((e) => e.startsWith("d2h-start"))).toHaveLength(4);
    // Pulling chunk 1 means chunk 0 is consumed: its buffer now takes chunk 4.
    const c1 = await chunks.next();
    expect(copies.events.at(-1)).toBe("d2h-start 4 slot 0");
    expect(c1.value).toEqual(pattern(6 * CHUNK).subarray(CHUNK, 2 * CHUNK));
    // Drain the rest.
    const rest: number[] = [];
    for (;;) {
      const next = chunks.next();
      await flush();
      while (copies.pending.length > 0) copies.completeOldest();
      const r = await next;
      if (r.done) break;
      rest.push(r.value.byteLength);
    }
    expect(rest).toEqual([CHUNK, CHUNK, CHUNK, CHUNK]);
  });

  it("reuses buffers round-robin and never overwrites a chunk before the next pull", async () => {
    const n = 10 * CHUNK;
    const device = pattern(n);
    const log: string[] = [];
    const pool = new StagingPool({ count: 3, bufferBytes: CHUNK, ...countingAllocator() });
    let i = 0;
    for await (const chunk of deviceToHost({ byteLength: n, chunkBytes: CHUNK, pool, copy: memcpyCopies(device, log) })) {
      const expected = device.slice(i * CHUNK, (i + 1) * CHUNK);
      // Let every queued copy complete while we "write" this chunk: none may land in it.
      for (let k = 0; k < 5; k++) await flush();
      expect(chunk).toEqual(expected);
      i++;
    }
    expect(i).toBe(10);
    expect(log.map((l) => l.split(" slot ")[1])).toEqual(["0", "1", "2", "0", "1", "2", "0", "1", "2", "0"]);
  });

  it("keeps at most `depth` copies in flight", async () => {
    const device = pattern(20 * CHUNK);
    let inFlight = 0;
    let most = 0;
    const copy: CopyToHost = (offset, into) => {
      most = Math.max(most, ++inFlight);
      return new Promise((resolve) =>
        setImmediate(() => {
          into.set(device.subarray(offset, offset + into.byteLength));
          inFlight--;
          resolve();
        }),
      );
    };
    for (const depth of [1, 2, 4]) {
      most = 0;
      const pool = new StagingPool({ count: 4, bufferBytes: CHUNK, ...countingAllocator() });
      for await (const _ of deviceToHost({ byteLength: 20 * CHUNK, chunkBytes: CHUNK, pool, copy, depth })) void _;
      expect(most).toBe(depth);
    }
  });

  it("stopping early waits for the copies in flight, then returns every buffer", async () => {
    const { pool, copies, it: chunks } = setup(8 * CHUNK);
    const first = chunks.next();
    await flush();
    copies.completeOldest();
    await first;
    const closing = chunks.return(undefined);
    await flush();
    expect(pool.available).toBe(0); // copies 1-3 still own their buffers
    while (copies.pending.length > 0) copies.completeOldest();
    await closing;
    expect(pool.available).toBe(4);
    expect(copies.events.filter((e) => e.startsWith("d2h-start"))).toHaveLength(4);
  });

  it("a failed copy rejects the stream after the others settle, with no buffer lost", async () => {
    const { pool, copies, it: chunks } = setup(8 * CHUNK);
    const first = chunks.next();
    await flush();
    copies.pending[0]!.fail(Object.assign(new Error("asynchronous copy failed: cudaErrorIllegalAddress"), { code: "cudaErrorIllegalAddress" }));
    await flush();
    expect(pool.available).toBe(0);
    while (copies.pending.length > 0) copies.completeOldest();
    await expect(first).rejects.toThrow(/cudaErrorIllegalAddress/);
    expect(pool.available).toBe(4);
  });

  it("a copy function that throws synchronously is reported the same way", async () => {
    const pool = new StagingPool({ count: 2, bufferBytes: CHUNK, ...countingAllocator() });
    const copy: CopyToHost = () => {
      throw new Error("not a live stream");
    };
    const run = async () => {
      for await (const _ of deviceToHost({ byteLength: 4 * CHUNK, chunkBytes: CHUNK, pool, copy })) void _;
    };
    await expect(run()).rejects.toThrow(/not a live stream/);
    expect(pool.available).toBe(2);
  });

  it("a chunk held by one transfer's consumer is safe from another transfer sharing the pool", async () => {
    const a = pattern(4 * CHUNK, 1);
    const b = pattern(12 * CHUNK, 2);
    const pool = new StagingPool({ count: 4, bufferBytes: CHUNK, ...countingAllocator() });
    const first = deviceToHost({ byteLength: a.byteLength, chunkBytes: CHUNK, pool, copy: memcpyCopies(a), depth: 2 })[Symbol.asyncIterator]();
    const held = (await first.next()).value as Uint8Array;
    const copy = held.slice();
    // While A's consumer holds its chunk, B streams to the end through the buffers A leaves free.
    const parts: Uint8Array[] = [];
    for await (const c of deviceToHost({ byteLength: b.byteLength, chunkBytes: CHUNK, pool, copy: memcpyCopies(b) })) parts.push(c.slice());
    expect(Buffer.concat(parts)).toEqual(Buffer.from(b));
    expect(held).toEqual(copy);
    await first.return(undefined);
    expect(pool.available).toBe(4);
  });

  it("two transfers sharing a small pool interleave without deadlock", async () => {
    const a = pattern(9 * CHUNK, 1);
    const b = pattern(7 * CHUNK, 2);
    const pool = new StagingPool({ count: 2, bufferBytes: CHUNK, ...countingAllocator() });
    const drain = async (device: Uint8Array) => {
      const parts: Uint8Array[] = [];
      for await (const c of deviceToHost({ byteLength: device.byteLength, chunkBytes: CHUNK, pool, copy: memcpyCopies(device) })) {
        parts.push(c.slice());
        await flush();
      }
      return Buffer.concat(parts);
    };
    const [ra, rb] = await Promise.all([drain(a), drain(b)]);
    expect(ra).toEqual(Buffer.from(a));
    expect(rb).toEqual(Buffer.from(b));
    expect(pool.available).toBe(2);
  });

  it("an empty tensor yields nothing and takes no buffer", async () => {
    const alloc = countingAllocator();
    const pool = new StagingPool({ count: 2, bufferBytes: CHUNK, ...alloc });
    const out: Uint8Array[] = [];
    for await (const c of deviceToHost({ byteLength: 0, chunkBytes: CHUNK, pool, copy: memcpyCopies(new Uint8Array(0)) })) out.push(c);
    expect(out).toEqual([]);
    expect(alloc.made).toEqual([]);
  });
});
