import { describe, expect, it } from "vitest";
import { createLocalGroup, type Collective } from "@savepoint/core";
import { gatherRows, type RowsToGather } from "../src/gather-rows.js";
import { rangeElements, rowRange } from "../src/shard-rows.js";

/** Every collective call of a rank, to see how the gather was cut. */
function counting(c: Collective, tags: string[]): Collective {
  return { rank: c.rank, worldSize: c.worldSize, barrier: (t, o) => c.barrier(t, o), broadcast: (t, v, r, o) => c.broadcast(t, v, r, o), allGather: (t, v, o) => (tags.push(t), c.allGather(t, v, o)) };
}

const shapes = [[7, 5], [3], [10, 2, 3], [1, 4]];
const full = shapes.map((s, i) => Float32Array.from({ length: s.reduce((a, b) => a * b, 1) }, (_, k) => i * 1000 + k));

function rowsOf(rank: number, world: number): RowsToGather[] {
  return shapes.map((shape, i) => {
    const r = rowRange(shape[0]!, rank, world);
    const per = rangeElements(shape, { start: 0, rows: 1 });
    return { key: `w${i}`, shape, rows: full[i]!.slice(r.start * per, (r.start + r.rows) * per) };
  });
}

describe("gathering sharded rows", () => {
  for (const [world, batchBytes] of [[3, 64 << 20], [3, 40], [4, 24], [2, 4]] as const) {
    it(`${world} ranks, at most ${batchBytes} bytes per all-gather: every rank gets every weight whole`, async () => {
      const group = createLocalGroup(world, { timeoutMs: 5000 });
      const tags: string[][] = group.map(() => []);
      const got = await Promise.all(group.map((c, r) => gatherRows(counting(c, tags[r]!), "load", rowsOf(r, world), batchBytes)));
      for (const wholes of got) expect(wholes).toEqual(full);
      expect(new Set(tags.map((t) => t.join()))).toHaveProperty("size", 1);
      const total = full.reduce((n, a) => n + a.byteLength, 0);
      // Small limits cut the gather (weights into pieces); a generous one sends all at once.
      if (batchBytes >= total) expect(tags[0]).toEqual(["load"]);
      else expect(tags[0]!.length).toBeGreaterThanOrEqual(Math.ceil(total / batchBytes));
    });
  }

  it("names the weight and the rank whose rows do not fit the shape", async () => {
    const group = createLocalGroup(2, { timeoutMs: 5000 });
    const bad = (r: number) => rowsOf(r, 2).map((w, i) => (r === 1 && i === 0 ? { ...w, rows: w.rows.slice(1) } : w));
    const results = await Promise.allSettled(group.map((c, r) => gatherRows(c, "load", bad(r))));
    for (const res of results) expect(res.status === "rejected" && String(res.reason)).toMatch(/gathering w0: rank 1 holds 14 elements of its piece, 15 expected/);
  });
});
