// No buffer over 1 GiB in savepoint's own code: an async save stages a tensor bigger than that in
// pieces, writes it, and reads it back chunk by chunk. (The sparse multi-GiB tests check the
// synchronous save and load paths the same way.)
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Fabric, LazyTensor } from "../../src/index.js";
import { STAGING_PIECE } from "../../src/tensor/staging-pool.js";
import { expectedTail, GiB, MiB, scratchDir, sparseTensor, TAIL_FLOATS, trackBigAllocations } from "./helpers.js";

describe("no savepoint buffer over 1 GiB", () => {
  it("the tracker sees every kind of allocation it watches", () => {
    const tracker = trackBigAllocations(MiB);
    try {
      const a = new Uint8Array(2 * MiB);
      void new Float32Array(MiB);
      void Buffer.allocUnsafeSlow(2 * MiB);
      void a.slice();
      void new Uint8Array(MiB); // at the limit: fine
    } finally {
      tracker.stop();
    }
    expect(tracker.big.map((b) => b.split(" of ")[0])).toEqual(["new Uint8Array", "new Float32Array", "Buffer.allocUnsafeSlow", "TypedArray.slice"]);
    // Restored: nothing is recorded any more.
    void new Uint8Array(2 * MiB);
    expect(tracker.big).toHaveLength(4);
  });

  it("an async save stages a 1.25 GiB tensor in pieces, writes it, and it reads back", async () => {
    const bytes = 1.25 * GiB;
    const scratch = scratchDir("async");
    const tracker = trackBigAllocations(GiB);
    try {
      const path = join(scratch.dir, "async.pt");
      const fabric = new Fabric();
      const pending = await fabric.save(path, { big: sparseTensor(bytes) }, { async: true });
      await pending.done;
      // Held for the next save, in pieces no bigger than STAGING_PIECE.
      expect(fabric.stagingBytes).toBe(bytes);
      expect(STAGING_PIECE).toBeLessThanOrEqual(GiB);
      fabric.releaseStaging();
      const big = (await new Fabric().load(path)).big as LazyTensor;
      let read = 0;
      let last: Uint8Array = new Uint8Array(0);
      for await (const chunk of big.chunks(32 * MiB)) {
        read += chunk.byteLength;
        last = chunk;
      }
      expect(read).toBe(bytes);
      expect(last.subarray(last.byteLength - TAIL_FLOATS * 4)).toEqual(expectedTail());
    } finally {
      tracker.stop();
      scratch.remove();
    }
    expect(tracker.big, tracker.big.join("\n\n")).toEqual([]);
  });
});
