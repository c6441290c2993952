import { describe, expect, it } from "vitest";
import { StagingPool } from "../src/staging/staging-pool.js";
import { countingAllocator, flush } from "./helpers/manual-copies.js";

describe("StagingPool", () => {
  it("allocates buffers on first use only", () => {
    const alloc = countingAllocator();
    const pool = new StagingPool({ count: 4, bufferBytes: 16, ...alloc });
    expect(alloc.made).toEqual([]);
    const a = pool.tryAcquire()!;
    expect(a.bytes.byteLength).toBe(16);
    pool.release(a);
    expect(pool.tryAcquire()).toBe(a); // reused, not a second allocation
    expect(alloc.made).toEqual([0]);
  });

  it("hands out at most `count` buffers and serves waiters in order", async () => {
    const pool = new StagingPool({ count: 2, bufferBytes: 8, ...countingAllocator() });
    const a = pool.tryAcquire()!;
    const b = pool.tryAcquire()!;
    expect(pool.tryAcquire()).toBeUndefined();
    expect(pool.available).toBe(0);
    const order: string[] = [];
    const first = pool.acquire().then((s) => (order.push(`first got ${s.index}`), s));
    const second = pool.acquire().then((s) => (order.push(`second got ${s.index}`), s));
    await flush();
    expect(order).toEqual([]);
    pool.release(b);
    await flush();
    expect(order).toEqual(["first got 1"]);
    pool.release(a);
    await flush();
    expect(order).toEqual(["first got 1", "second got 0"]);
    pool.release(await first);
    pool.release(await second);
    expect(pool.available).toBe(2);
  });

  it("refuses a double release and closing while buffers are out", () => {
    const alloc = countingAllocator();
    const pool = new StagingPool({ count: 2, bufferBytes: 8, ...alloc });
    const a = pool.tryAcquire()!;
    expect(() => pool.close()).toThrow(/still in use/);
    pool.release(a);
    expect(() => pool.release(a)).toThrow(/released twice/);
    pool.close();
    expect(alloc.freed).toEqual([0]);
    expect(() => pool.tryAcquire()).toThrow(/closed/);
  });
});
