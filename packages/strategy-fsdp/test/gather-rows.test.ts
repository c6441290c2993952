import { describe, expect, it } from "vitest";
import { createLocalGroup, type Collective } from "@savepoint/core";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gatherRows, type RowsToGather } from "../src/gather-rows.js";
import { filesReachEveryRank } from "../src/file-exchange.js";
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
      const got = await Promise.all(group.map((c, r) => gatherRows(counting(c, tags[r]!), "load", rowsOf(r, world), { batchBytes })));
      for (const wholes of got) expect(wholes).toEqual(full);
      expect(new Set(tags.map((t) => t.join()))).toHaveProperty("size", 1);
      const total = full.reduce((n, a) => n + a.byteLength, 0);
      // Small limits cut the gather (weights into pieces); a generous one sends all at once.
      if (batchBytes >= total) expect(tags[0]).toEqual(["load"]);
      else expect(tags[0]!.length).toBeGreaterThanOrEqual(Math.ceil(total / batchBytes));
    });
  }

  it("fills the destinations it is given (and returns them), and refuses one of the wrong size or type before anything moves", async () => {
    for (const throughFiles of [false, true]) {
      const left = await inTempFolder(async () => {
        const group = createLocalGroup(2, { timeoutMs: 5000 });
        const into = group.map(() => full.map((a) => new Float32Array(a.length)));
        const got = await Promise.all(group.map((c, r) => gatherRows(c, "load", rowsOf(r, 2).map((w, i) => ({ ...w, into: into[r]![i] })), { throughFiles })));
        got.forEach((wholes, r) => {
          expect(wholes).toEqual(full);
          wholes.forEach((w, i) => expect(w).toBe(into[r]![i]));
        });
      });
      expect(left).toEqual([]);
    }
    const group = createLocalGroup(2, { timeoutMs: 5000 });
    const bad = [new Float32Array(34), new Int32Array(35)];
    for (const wrong of bad) {
      const results = await Promise.allSettled(group.map((c, r) => gatherRows(c, "load", rowsOf(r, 2).map((w, i) => (i === 0 ? { ...w, into: wrong } : w)))));
      expect(results[0]!.status === "rejected" && String(results[0]!.reason)).toMatch(/gathering w0: the destination holds (34 Float32Array|35 Int32Array) elements, 35 Float32Array elements expected/);
    }
  });

  it("names the weight and the rank whose rows do not fit the shape", async () => {
    const group = createLocalGroup(2, { timeoutMs: 5000 });
    const bad = (r: number) => rowsOf(r, 2).map((w, i) => (r === 1 && i === 0 ? { ...w, rows: w.rows.slice(1) } : w));
    const results = await Promise.allSettled(group.map((c, r) => gatherRows(c, "load", bad(r))));
    for (const res of results) expect(res.status === "rejected" && String(res.reason)).toMatch(/gathering w0: rank 1 holds 14 elements of its piece, 15 expected/);
  });

  /** Runs `body` with the temporary folder pointed at a fresh one; returns what is left in it after. */
  async function inTempFolder(body: () => Promise<void>): Promise<string[]> {
    const folder = mkdtempSync(join(tmpdir(), "savepoint-gather-test-"));
    const before = process.env.TMPDIR;
    process.env.TMPDIR = folder;
    try {
      await body();
      return readdirSync(folder);
    } finally {
      if (before === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = before;
      rmSync(folder, { recursive: true, force: true });
    }
  }

  for (const world of [2, 3, 4]) {
    it(`${world} ranks on one machine: rows go through files, none left after, weights whole`, async () => {
      const left = await inTempFolder(async () => {
        const group = createLocalGroup(world, { timeoutMs: 5000 });
        const tags: string[][] = group.map(() => []);
        const got = await Promise.all(group.map((c, r) => gatherRows(counting(c, tags[r]!), "load", rowsOf(r, world), { throughFiles: true, batchBytes: 4 })));
        for (const wholes of got) expect(wholes).toEqual(full);
        // One exchange of file names, however small batchBytes is: no weight bytes through the collective.
        expect(tags[0]).toEqual(["load: rows in files"]);
      });
      expect(left).toEqual([]);
    });
  }

  it("through files, in few calls: 1,300 small weights (over the 512 buffers of one call) and big ones cut across calls, every value in place", async () => {
    const world = 2;
    const manyShapes: number[][] = [...Array.from({ length: 1300 }, (_, i) => [3 + (i % 5), 1 + (i % 3)]), [9, 3001], [0, 4], [2], [5, 2000]];
    const wholes = manyShapes.map((s, i) => {
      const a = new Float32Array(s.reduce((x, y) => x * y, 1));
      for (let k = 0; k < a.length; k++) a[k] = i + k / 1e6;
      return a;
    });
    const rows = (rank: number): RowsToGather[] =>
      manyShapes.map((shape, i) => {
        const r = rowRange(shape[0]!, rank, world);
        const per = rangeElements(shape, { start: 0, rows: 1 });
        return { key: `w${i}`, shape, rows: wholes[i]!.slice(r.start * per, (r.start + r.rows) * per) };
      });
    const left = await inTempFolder(async () => {
      const group = createLocalGroup(world, { timeoutMs: 30_000 });
      // 10,000 bytes per call: weights split across calls at odd offsets, and calls that start inside a weight.
      const got = await Promise.all(group.map((c, r) => gatherRows(c, "load", rows(r), { throughFiles: true, fileCallBytes: 10_000 })));
      for (const mine of got) {
        expect(mine.length).toBe(wholes.length);
        mine.forEach((w, i) => {
          // Compared whole: a run cut at the wrong byte shifts everything after it.
          expect(Buffer.compare(Buffer.from(w.buffer, w.byteOffset, w.byteLength), Buffer.from(wholes[i]!.buffer))).toBe(0);
        });
      }
    });
    expect(left).toEqual([]);
  });

  it("through files too, a rank holding other rows than the split gives it is named before anything is read", async () => {
    const left = await inTempFolder(async () => {
      const group = createLocalGroup(2, { timeoutMs: 5000 });
      const bad = (r: number) => rowsOf(r, 2).map((w, i) => (r === 1 && i === 0 ? { ...w, rows: w.rows.slice(1) } : w));
      const results = await Promise.allSettled(group.map((c, r) => gatherRows(c, "load", bad(r), { throughFiles: true })));
      for (const res of results) expect(res.status === "rejected" && String(res.reason)).toMatch(/gathering w0: rank 1 holds 14 elements of it, 15 expected/);
    });
    expect(left).toEqual([]);
  });

  it("a rank that cannot write its file fails every rank, naming it", async () => {
    const group = createLocalGroup(2, { timeoutMs: 5000 });
    const before = process.env.TMPDIR;
    process.env.TMPDIR = "/nonexistent/savepoint-tmp";
    try {
      const results = await Promise.allSettled(group.map((c, r) => gatherRows(c, "load", rowsOf(r, 2), { throughFiles: true })));
      for (const res of results) expect(res.status === "rejected" && String(res.reason)).toMatch(/gathering weights \(load\): rank 0 could not write its rows to \/nonexistent/);
    } finally {
      if (before === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = before;
    }
  });

  it("ranks that can read each other's files find out once per collective; a single rank does not use files", async () => {
    const left = await inTempFolder(async () => {
      const group = createLocalGroup(3, { timeoutMs: 5000 });
      const tags: string[][] = group.map(() => []);
      expect(await Promise.all(group.map((c, r) => filesReachEveryRank(counting(c, tags[r]!), "probe")))).toEqual([true, true, true]);
      // Decided once: no second probe on the same collectives.
      expect(await Promise.all(group.map((c) => filesReachEveryRank(c, "again")))).toEqual([true, true, true]);
      expect(await filesReachEveryRank(createLocalGroup(1)[0]!, "alone")).toBe(false);
    });
    expect(left).toEqual([]);
  });

  it("a rank whose file the others cannot read makes every rank use the collective instead", async () => {
    const group = createLocalGroup(2, { timeoutMs: 5000 });
    // Rank 1 offers a file that does not exist where rank 0 looks: as on another machine.
    const c1 = group[1]!;
    const liar: Collective = {
      rank: 1,
      worldSize: 2,
      barrier: (t, o) => c1.barrier(t, o),
      broadcast: (t, v, r, o) => c1.broadcast(t, v, r, o),
      allGather: (t, v, o) => c1.allGather(t, (t.endsWith("probe files") && v ? { ...(v as object), file: "/nonexistent/savepoint" } : v) as never, o),
    };
    expect(await Promise.all([filesReachEveryRank(group[0]!, "probe"), filesReachEveryRank(liar, "probe")])).toEqual([false, false]);
  });
});
