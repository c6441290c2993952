import { describe, expect, it } from "vitest";
import { allReduce } from "../../src/collectives/all-reduce.js";
import { SingleProcessCollective } from "../../src/collectives/collective.js";
import { resolveTimeout } from "../../src/collectives/failure.js";
import { collectiveFromEnv } from "../../src/collectives/from-env.js";
import { createLocalGroup } from "../../src/collectives/local-group.js";
import { CollectiveTimeoutError, InvalidArgumentError } from "../../src/errors.js";
import { localGroups } from "../helpers/local-groups.js";

const group = localGroups();

describe("in-process collective group", () => {
  it("barrier, broadcast from any root, and allGather in rank order", async () => {
    const g = group(3);
    await Promise.all(g.map((c) => c.barrier("start")));
    expect(await Promise.all(g.map((c) => c.broadcast("b", `from ${c.rank}`, 2)))).toEqual(["from 2", "from 2", "from 2"]);
    expect(await Promise.all(g.map((c) => c.broadcast("b0", { path: `p${c.rank}` })))).toEqual([{ path: "p0" }, { path: "p0" }, { path: "p0" }]);
    const gathered = await Promise.all(g.map((c) => c.allGather("g", { rank: c.rank, data: new Float32Array([c.rank, 0.5]) })));
    expect(gathered[1]).toEqual([0, 1, 2].map((r) => ({ rank: r, data: new Float32Array([r, 0.5]) })));
    expect(gathered[0]).not.toBe(gathered[1]); // every rank gets its own copy
    expect(gathered[0]![0]).not.toBe(gathered[1]![0]);
  });

  it("operations called concurrently keep their order", async () => {
    const g = group(2);
    const results = await Promise.all(g.flatMap((c) => [c.allGather("a", `a${c.rank}`), c.allGather("b", `b${c.rank}`)]));
    expect(results).toEqual([["a0", "a1"], ["b0", "b1"], ["a0", "a1"], ["b0", "b1"]]);
  });

  it("a rank that never arrives fails the others with CollectiveTimeoutError naming it and the tag", async () => {
    const [a, b, c] = group(3, 200);
    void c;
    const started = Date.now();
    const results = await Promise.allSettled([a!.barrier("save ck/x.ckpt"), b!.barrier("save ck/x.ckpt")]);
    expect(Date.now() - started).toBeLessThan(5000);
    for (const r of results) {
      const err = (r as PromiseRejectedResult).reason as CollectiveTimeoutError;
      expect(err).toBeInstanceOf(CollectiveTimeoutError);
      expect(err.message).toMatch(/^\[savepoint\] rank 2 did not join `save ck\/x\.ckpt` within 200 ms/);
      expect(err.message).toMatch(/ranks 0, 1 waited/);
      expect(err.message).toMatch(/not inside `if \(rank === 0\)`/);
      expect(err.message).toMatch(/SAVEPOINT_TIMEOUT_MS/);
      expect(err.subject).toBe("rank 2");
    }
  });

  it("the late rank fails too, at once, instead of completing alone", async () => {
    const [a, b] = group(2, 100);
    await expect(a!.barrier("save x")).rejects.toBeInstanceOf(CollectiveTimeoutError);
    const t = Date.now();
    const err = await b!.barrier("end").catch((e: Error) => e);
    expect(Date.now() - t).toBeLessThan(1000);
    expect(err).toBeInstanceOf(CollectiveTimeoutError);
    expect((err as Error).message).toMatch(/rank 1 reached `end` .* after the other ranks had given up on it: rank 1 did not join `save x`/);
  });

  it("per-call timeoutMs overrides the default", async () => {
    const [a] = group(2, 60_000);
    const t = Date.now();
    await expect(a!.barrier("quick", { timeoutMs: 50 })).rejects.toThrow(/within 50 ms/);
    expect(Date.now() - t).toBeLessThan(5000);
  });

  it("ranks calling different operations fail at once, naming both calls", async () => {
    const [a, b] = group(2, 30_000);
    const t = Date.now();
    const [ra, rb] = await Promise.allSettled([a!.allGather("save ck/x.ckpt", 1), b!.barrier("end of epoch")]);
    expect(Date.now() - t).toBeLessThan(10_000);
    for (const r of [ra, rb]) {
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(CollectiveTimeoutError);
      expect(String((r as PromiseRejectedResult).reason)).toMatch(/rank 0 called allGather `save ck\/x\.ckpt`, rank 1 called barrier `end of epoch`/);
    }
  });

  it("tags must start with the same word on every rank; the rest may differ", async () => {
    const [a, b] = group(2, 5000);
    expect(await Promise.all([a!.allGather("save ck/0.ckpt", 0), b!.allGather("save ck/1.ckpt", 1)])).toEqual([[0, 1], [0, 1]]);
    // Rank 1 skipped its save (`if (rank === 0) save(...)`) and went on to all-reduce gradients.
    const results = await Promise.allSettled([a!.allGather("save ck/x.ckpt", 0), b!.allGather("gradients of step 3", 1)]);
    for (const r of results) expect(String((r as PromiseRejectedResult).reason)).toMatch(/rank 0 called allGather `save ck\/x\.ckpt`, rank 1 called allGather `gradients of step 3`.*not inside `if \(rank === 0\)`/);
  });

  it("a broadcast with different roots is a mismatch", async () => {
    const [a, b] = group(2, 5000);
    const results = await Promise.allSettled([a!.broadcast("b", 1, 0), b!.broadcast("b", 2, 1)]);
    expect(results.every((r) => r.status === "rejected")).toBe(true);
    expect(String((results[0] as PromiseRejectedResult).reason)).toMatch(/from root 0.*from root 1/);
  });

  it("a rank that closes fails the others at once, naming it", async () => {
    const [a, b, c] = group(3, 60_000);
    const t = Date.now();
    const pending = Promise.allSettled([a!.barrier("save y"), b!.barrier("save y")]);
    await c!.close();
    const results = await pending;
    expect(Date.now() - t).toBeLessThan(10_000);
    for (const r of results) expect(String((r as PromiseRejectedResult).reason)).toMatch(/rank 2 closed its collective .* while ranks 0, 1 waited in `save y`/);
    await expect(a!.barrier("later")).rejects.toThrow(/rank 2 closed/);
    await expect(c!.barrier("after close")).rejects.toThrow(/after its collective was closed/);
  });

  it("refuses values that cannot be cloned without losing step with the other ranks", async () => {
    const [a, b] = group(2, 2000);
    await expect(a!.allGather("bad", { f: () => 1 })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(await Promise.all([a!.allGather("good", a!.rank), b!.allGather("good", b!.rank)])).toEqual([[0, 1], [0, 1]]);
  });

  it("checks its arguments", async () => {
    const [a] = group(2);
    await expect(a!.broadcast("b", 1, 5)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(a!.barrier(3 as never)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(a!.barrier("t", { timeoutMs: -1 })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(() => createLocalGroup(0)).toThrow(InvalidArgumentError);
  });
});

describe("allReduce", () => {
  it("sums and averages in rank order, identically on every rank", async () => {
    const g = group(3);
    const inputs = g.map((c) => [new Float32Array([0.1 * (c.rank + 1), 1e8, -c.rank]), new Float32Array([c.rank])]);
    const sums = await Promise.all(g.map((c) => allReduce(c, "s", inputs[c.rank]!, "sum")));
    const means = await Promise.all(g.map((c) => allReduce(c, "m", inputs[c.rank]!, "mean")));
    let expected = new Float32Array(3);
    for (const r of [0, 1, 2]) for (let k = 0; k < 3; k++) expected[k] = expected[k]! + inputs[r]![0]![k]!;
    expect(sums[0]![0]).toEqual(expected);
    expect(sums[0]![0]).toBeInstanceOf(Float32Array);
    expect(means[2]![1]).toEqual(new Float32Array([1]));
    for (const r of [1, 2]) {
      expect(sums[r]).toEqual(sums[0]);
      expect(means[r]).toEqual(means[0]);
    }
  });

  it("refuses arrays of different lengths on different ranks", async () => {
    const [a, b] = group(2);
    const results = await Promise.allSettled([allReduce(a!, "x", [new Float32Array(2)]), allReduce(b!, "x", [new Float32Array(3)])]);
    for (const r of results) expect(String((r as PromiseRejectedResult).reason)).toMatch(/same types and lengths/);
  });
});

describe("timeouts and collectiveFromEnv", () => {
  it("reads SAVEPOINT_TIMEOUT_MS, and options win over it", () => {
    const old = process.env.SAVEPOINT_TIMEOUT_MS;
    try {
      process.env.SAVEPOINT_TIMEOUT_MS = "1234";
      expect(resolveTimeout()).toBe(1234);
      expect(resolveTimeout(99)).toBe(99);
      expect(createLocalGroup(1)[0]!.timeoutMs).toBe(1234);
      process.env.SAVEPOINT_TIMEOUT_MS = "soon";
      expect(() => resolveTimeout()).toThrow(/SAVEPOINT_TIMEOUT_MS must be a positive number/);
      delete process.env.SAVEPOINT_TIMEOUT_MS;
      expect(resolveTimeout()).toBe(60_000);
    } finally {
      if (old === undefined) delete process.env.SAVEPOINT_TIMEOUT_MS;
      else process.env.SAVEPOINT_TIMEOUT_MS = old;
    }
  });

  it("picks a single process without launcher or Redis variables", () => {
    expect(collectiveFromEnv({ env: {} })).toBeInstanceOf(SingleProcessCollective);
    expect(collectiveFromEnv({ env: { WORLD_SIZE: "1", RANK: "0" } })).toBeInstanceOf(SingleProcessCollective);
  });

  it("refuses WORLD_SIZE > 1 with no way to reach the other ranks, saying how to launch", () => {
    expect(() => collectiveFromEnv({ env: { WORLD_SIZE: "4", RANK: "1" } })).toThrow(/savepoint run -n 4.*SAVEPOINT_REDIS_URL/s);
  });

  it("names a bad RANK or WORLD_SIZE", () => {
    expect(() => collectiveFromEnv({ env: { SAVEPOINT_REDIS_URL: "redis://127.0.0.1:1", WORLD_SIZE: "2" } })).toThrow(/RANK must be a non-negative integer, got nothing/);
    expect(() => collectiveFromEnv({ env: { SAVEPOINT_REDIS_URL: "redis://127.0.0.1:1", WORLD_SIZE: "2", RANK: "2" } })).toThrow(/rank must be an integer in \[0, 1\]/);
    expect(() => collectiveFromEnv({ env: { SAVEPOINT_HUB: "nowhere", WORLD_SIZE: "2", RANK: "0" } })).toThrow(/SAVEPOINT_HUB must be host:port/);
  });
});
