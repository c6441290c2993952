import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { CheckpointWriteError, createLocalGroup, createStrategy, Fabric, HostTensor, InvalidArgumentError, MemoryIO, SingleProcessCollective, type AtomicWrite, type CheckpointIO, type Collective } from "@savepoint/core";
import { DDPStrategy } from "../src/index.js";
import { mlp, step, tf, useCpu, weightBits } from "../../core/test/helpers/tfjs.js";

beforeAll(useCpu);
let open: Collective[] = [];
afterEach(async () => {
  await Promise.all(open.map((c) => c.close?.()));
  open = [];
});
const group = (n: number, timeoutMs = 1000) => {
  const g = createLocalGroup(n, { timeoutMs });
  open.push(...g);
  return g;
};

describe("DDPStrategy", () => {
  it('registers itself as "ddp" on import and defaults to collectiveFromEnv() (a single process here)', () => {
    const s = createStrategy("ddp");
    expect(s).toBeInstanceOf(DDPStrategy);
    expect(s.collective).toBeInstanceOf(SingleProcessCollective);
    const fabric = new Fabric({ strategy: "ddp" });
    expect([fabric.globalRank, fabric.worldSize, fabric.isGlobalZero]).toEqual([0, 1, true]);
  });

  it("takes a collective or options, and checks them", () => {
    const [c] = group(1);
    expect(new DDPStrategy(c!).collective).toBe(c);
    expect(new DDPStrategy({ collective: c, timeoutMs: 10, writeTimeoutMs: 20 }).collective).toBe(c);
    expect(() => new DDPStrategy({ collective: c, timeoutMs: -1 })).toThrow(InvalidArgumentError);
    expect(() => new DDPStrategy({ collective: c, writeTimeoutMs: Number.NaN })).toThrow(/writeTimeoutMs/);
  });

  it("saves tfjs replicas from rank 0 and every rank resumes training bit for bit", async () => {
    const io = new MemoryIO();
    const ranks = group(2);
    const fabrics = ranks.map((c) => new Fabric({ strategy: new DDPStrategy(c), io }));
    const replicas = ranks.map(() => ({ model: mlp(1), optimizer: tf.train.adam(0.01) }));
    for (const r of replicas) for (let i = 0; i < 4; i++) step(r.model, r.optimizer, i);
    await Promise.all(fabrics.map((f, rank) => f.save("ddp.ckpt", { model: replicas[rank]!.model, optimizer: replicas[rank]!.optimizer, iteration: 4 })));
    expect([...io.files.keys()]).toEqual(["ddp.ckpt"]);
    for (const r of replicas) for (let i = 4; i < 8; i++) step(r.model, r.optimizer, i);

    const fresh = ranks.map(() => ({ model: mlp(7), optimizer: tf.train.adam(0.01), iteration: 0 }));
    const remainders = await Promise.all(fabrics.map((f, rank) => f.load("ddp.ckpt", fresh[rank]!)));
    expect(remainders).toEqual([{}, {}]);
    for (const s of fresh) {
      expect(s.iteration).toBe(4);
      for (let i = 4; i < 8; i++) step(s.model, s.optimizer, i);
      expect(weightBits(s.model)).toEqual(weightBits(replicas[0]!.model));
    }
  });

  it("on load, every rank reads only the entries it restores", async () => {
    const io = new MemoryIO();
    const fabrics = group(2).map((c) => new Fabric({ strategy: new DDPStrategy(c), io }));
    const big = HostTensor.fromValues("float32", [1 << 18], new Array(1 << 18).fill(0.5));
    await Promise.all(fabrics.map((f) => f.save("big.ckpt", { step: 12, big })));
    const size = io.files.get("big.ckpt")!.byteLength;
    expect(size).toBeGreaterThan(1 << 20);
    io.bytesRead = 0;
    const states = fabrics.map(() => ({ step: 0 }));
    const remainders = await Promise.all(fabrics.map((f, r) => f.load("big.ckpt", states[r]!)));
    expect(states).toEqual([{ step: 12 }, { step: 12 }]);
    expect(io.bytesRead).toBeLessThan(64 * 1024); // both ranks together: headers only, not the 1 MiB tensor
    expect(Object.keys(remainders[1]!)).toEqual(["big"]);
  });

  it("a write that fails on rank 0 (disk full) fails every rank with the cause, leaving the old file", async () => {
    const io = new MemoryIO();
    let full = false;
    const flaky: CheckpointIO = {
      name: "flaky",
      stat: (p) => io.stat(p),
      openRead: (p) => io.openRead(p),
      async openWrite(p): Promise<AtomicWrite> {
        const w = await io.openWrite(p);
        return { get position() { return w.position; }, write: async (c) => { if (full) throw new CheckpointWriteError("no space left on device (ENOSPC)"); await w.write(c); }, commit: () => w.commit(), abort: () => w.abort() };
      },
    };
    const fabrics = group(3).map((c) => new Fabric({ strategy: new DDPStrategy(c), io: flaky }));
    await Promise.all(fabrics.map((f) => f.save("x.ckpt", { step: 1 })));
    const before = io.files.get("x.ckpt")!.slice();
    full = true;
    const results = await Promise.allSettled(fabrics.map((f) => f.save("x.ckpt", { step: 2 })));
    for (const r of results) {
      const err = (r as PromiseRejectedResult).reason as Error;
      expect(err).toBeInstanceOf(CheckpointWriteError);
      expect(err.message).toMatch(/ENOSPC/);
    }
    expect(String((results[1] as PromiseRejectedResult).reason)).toMatch(/rank 0 could not write the checkpoint for `save x\.ckpt`/);
    expect(io.files.get("x.ckpt")).toEqual(before);
  });

  it("waits for a slow writer beyond the agreement timeout (writeTimeoutMs)", async () => {
    const io = new MemoryIO();
    const slow: CheckpointIO = {
      name: "slow",
      stat: (p) => io.stat(p),
      openRead: (p) => io.openRead(p),
      async openWrite(p): Promise<AtomicWrite> {
        const w = await io.openWrite(p);
        return { get position() { return w.position; }, write: (c) => w.write(c), commit: async () => { await new Promise((r) => setTimeout(r, 400)); await w.commit(); }, abort: () => w.abort() };
      },
    };
    const fabrics = group(2, 150).map((c) => new Fabric({ strategy: new DDPStrategy({ collective: c }), io: slow }));
    await Promise.all(fabrics.map((f) => f.save("slow.ckpt", { step: 1 })));
    expect(io.files.has("slow.ckpt")).toBe(true);
  });

  it("async saves: every rank returns after rank 0 staged its state; rank 0's handle reports the write", async () => {
    const io = new MemoryIO();
    const ranks = group(2);
    const fabrics = ranks.map((c) => new Fabric({ strategy: new DDPStrategy(c), io }));
    const models = ranks.map(() => mlp(2));
    const handles = await Promise.all(fabrics.map((f, r) => f.save("async.ckpt", { model: models[r], step: 3 }, { async: true })));
    await Promise.all(handles.map((h) => h.done));
    expect([...io.files.keys()]).toEqual(["async.ckpt"]);
    // The ranks' collective calls stayed in step: a synchronous save and a load still work.
    await Promise.all(fabrics.map((f) => f.save("sync.ckpt", { step: 4 })));
    const states = ranks.map(() => ({ model: mlp(9), step: 0 }));
    await Promise.all(fabrics.map((f, r) => f.load("async.ckpt", states[r]!)));
    for (const s of states) {
      expect(s.step).toBe(3);
      expect(weightBits(s.model)).toEqual(weightBits(models[0]!));
    }
  });

  it("works in a world of one without any launcher", async () => {
    const io = new MemoryIO();
    const fabric = new Fabric({ strategy: new DDPStrategy(new SingleProcessCollective()), io });
    await fabric.save("one.ckpt", { a: 1 });
    expect(await fabric.load("one.ckpt")).toEqual({ a: 1 });
  });
});
