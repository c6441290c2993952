/**
 * CheckpointManager: naming, retention (keepLast / keepBest / every), the `latest` pointer,
 * restore that skips damaged checkpoints, failure ordering (nothing deleted before a commit),
 * async saves, and multi-rank use where rank 0 alone manages files.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CheckpointWriteError,
  CorruptCheckpointError,
  Fabric,
  HostTensor,
  InvalidArgumentError,
  MemoryIO,
  SingleDeviceStrategy,
  StrictLoadError,
  type AtomicWrite,
  type Collective,
  type Strategy,
  type StrategyContext,
  type StrategyLoadOptions,
  type StrategyLoadRawOptions,
  type StrategySaveOptions,
} from "../../src/index.js";
import { CheckpointManager } from "../../src/manager/checkpoint-manager.js";
import { createLocalGroup } from "../../src/collectives/local-group.js";
import { mlp, useCpu, weightBits } from "../helpers/tfjs.js";

beforeAll(useCpu);

const tensor = (v: number) => HostTensor.fromValues("float32", [4], [v, v, v, v]);
const names = (io: MemoryIO, dir = "ckpt") => [...io.files.keys()].filter((k) => k.startsWith(`${dir}/`)).map((k) => k.slice(dir.length + 1)).sort();
const steps = async (m: CheckpointManager) => (await m.list()).map((c) => c.step);
const pointer = (io: MemoryIO) => JSON.parse(new TextDecoder().decode(io.files.get("ckpt/latest")!));

/** MemoryIO that can fail chosen commits, and records every write and removal. */
class FaultyIO extends MemoryIO {
  failCommit: ((path: string) => boolean) | undefined;
  readonly log: string[] = [];
  override async openWrite(path: string): Promise<AtomicWrite> {
    const inner = await super.openWrite(path);
    const io = this;
    return {
      get position() {
        return inner.position;
      },
      write: (c) => inner.write(c),
      abort: () => inner.abort(),
      async commit() {
        if (io.failCommit?.(path)) {
          await inner.abort();
          throw new CheckpointWriteError(`cannot write ${path}: the disk is full (test).`);
        }
        io.log.push(`write ${path}`);
        await inner.commit();
      },
    };
  }
  override async remove(path: string): Promise<void> {
    this.log.push(`remove ${path}`);
    await super.remove(path);
  }
}

describe("CheckpointManager: saving and retention", () => {
  it("names checkpoints by step, writes a sidecar and the latest pointer", async () => {
    const io = new MemoryIO();
    const m = new CheckpointManager(new Fabric({ io }), "ckpt");
    const h = await m.save(7, { w: tensor(7), step: 7 }, { loss: 0.5 });
    expect(h.saved).toBe(true);
    expect(h.path).toBe("ckpt/step-000000007.ckpt");
    expect(await h.done).toMatchObject({ step: 7, path: "ckpt/step-000000007.ckpt", metrics: { loss: 0.5 } });
    expect(names(io)).toEqual(["latest", "step-000000007.ckpt", "step-000000007.ckpt.meta.json"]);
    expect(pointer(io)).toEqual({ step: 7, checkpoint: "step-000000007.ckpt" });
    expect(await m.latest()).toMatchObject({ step: 7, metrics: { loss: 0.5 } });
    expect(m.pathOf(12)).toBe("ckpt/step-000000012.ckpt");
  });

  it("keepLast keeps the newest N; without retention options everything is kept", async () => {
    const io = new MemoryIO();
    const fabric = new Fabric({ io });
    const m = new CheckpointManager(fabric, "ckpt", { keepLast: 2 });
    for (let s = 0; s < 5; s++) await m.save(s * 10, { w: tensor(s) });
    expect(await steps(m)).toEqual([30, 40]);
    expect(names(io).filter((n) => n.endsWith(".meta.json"))).toEqual(["step-000000030.ckpt.meta.json", "step-000000040.ckpt.meta.json"]);
    const all = new CheckpointManager(fabric, "all");
    for (let s = 0; s < 4; s++) await all.save(s, { w: tensor(s) });
    expect(await steps(all)).toEqual([0, 1, 2, 3]);
  });

  it("every skips other steps without touching storage", async () => {
    const io = new FaultyIO();
    const m = new CheckpointManager(new Fabric({ io }), "ckpt", { every: 5 });
    const skipped = await m.save(3, { w: tensor(3) });
    expect(skipped.saved).toBe(false);
    expect(await skipped.done).toBeNull();
    expect(io.log).toEqual([]);
    expect((await m.save(10, { w: tensor(10) })).saved).toBe(true);
    expect(await steps(m)).toEqual([10]);
  });

  it("keepBest keeps the k best by the metric, plus keepLast, and never the newest only by rank", async () => {
    const io = new MemoryIO();
    const m = new CheckpointManager(new Fabric({ io }), "ckpt", { keepLast: 1, keepBest: { metric: "val", mode: "min", k: 2 } });
    const vals = [0.9, 0.2, 0.5, 0.1, 0.7, Number.NaN, 0.8];
    for (let s = 0; s < vals.length; s++) await m.save(s, { w: tensor(s) }, { val: vals[s]! });
    // Best two: step 3 (0.1), step 1 (0.2); newest: step 6. NaN ranks worst.
    expect(await steps(m)).toEqual([1, 3, 6]);
    const max = new CheckpointManager(new Fabric({ io }), "max", { keepBest: { metric: "acc", mode: "max", k: 1 } });
    for (const [s, acc] of [[1, 0.5], [2, 0.9], [3, 0.4]] as const) await max.save(s, { w: tensor(s) }, { acc });
    // keepBest alone still keeps the newest (step 3) besides the best (step 2).
    expect(await steps(max)).toEqual([2, 3]);
    expect((await max.list()).map((c) => c.metrics.acc)).toEqual([0.9, 0.4]);
    // Metrics survive a new manager in a new process: they come from the sidecars.
    const again = new CheckpointManager(new Fabric({ io }), "max", { keepBest: { metric: "acc", mode: "max", k: 1 } });
    await again.save(4, { w: tensor(4) }, { acc: 0.1 });
    expect(await steps(again)).toEqual([2, 4]);
  });

  it("refuses a missing keepBest metric and bad arguments before writing anything", async () => {
    const io = new FaultyIO();
    const fabric = new Fabric({ io });
    const m = new CheckpointManager(fabric, "ckpt", { keepBest: { metric: "val", mode: "min", k: 1 } });
    await expect(m.save(1, { w: tensor(1) }, { loss: 1 })).rejects.toThrow(/keepBest watches the metric "val".*only loss/);
    await expect(m.save(-1, {})).rejects.toThrow(InvalidArgumentError);
    await expect(m.save(1.5, {})).rejects.toThrow(/non-negative integer/);
    await expect(m.save(1, { w: tensor(1) }, { val: "low" as unknown as number })).rejects.toThrow(/metric "val" must be a number/);
    expect(io.log).toEqual([]);
    expect(() => new CheckpointManager(fabric, "ckpt", { keepLast: 0 })).toThrow(/keepLast/);
    expect(() => new CheckpointManager(fabric, "ckpt", { keepBest: { metric: "x", mode: "low" as "min", k: 1 } })).toThrow(/mode/);
    expect(() => new CheckpointManager(fabric, "ckpt", { every: 0 })).toThrow(/every/);
    expect(() => new CheckpointManager(fabric, "ckpt", { extension: "ckpt" })).toThrow(/extension/);
    expect(() => new CheckpointManager({} as Fabric, "ckpt")).toThrow(/needs a Fabric/);
    const noList = { name: "bare", stat: io.stat.bind(io), openRead: io.openRead.bind(io), openWrite: io.openWrite.bind(io) };
    expect(() => new CheckpointManager(new Fabric({ io: noList }), "ckpt", { keepLast: 1 })).toThrow(/can list and remove files; bare cannot/);
  });

  it("deletes nothing when the new checkpoint fails to commit, and leaves no orphan sidecar", async () => {
    const io = new FaultyIO();
    const m = new CheckpointManager(new Fabric({ io }), "ckpt", { keepLast: 1 });
    await m.save(1, { w: tensor(1) });
    const before = names(io);
    io.failCommit = (p) => p.endsWith("step-000000002.ckpt");
    await expect(m.save(2, { w: tensor(2) })).rejects.toThrow(/disk is full/);
    expect(names(io)).toEqual(before);
    expect(pointer(io).step).toBe(1);
    expect(io.log.filter((l) => l.startsWith("remove ") && !l.endsWith(".meta.json"))).toEqual([]);
    io.failCommit = undefined;
    await m.save(2, { w: tensor(2) });
    expect(await steps(m)).toEqual([2]);
    // Retention ran only after the commit of step 2.
    const log = io.log.slice(io.log.indexOf("write ckpt/step-000000002.ckpt"));
    expect(log).toContain("remove ckpt/step-000000001.ckpt");
  });

  it("a crash between the commit and the pointer leaves the new checkpoint listed; the next save repairs the pointer", async () => {
    const io = new FaultyIO();
    const m = new CheckpointManager(new Fabric({ io }), "ckpt", { keepLast: 1 });
    await m.save(1, { w: tensor(1) });
    io.failCommit = (p) => p.endsWith("/latest");
    await expect(m.save(2, { w: tensor(2) })).rejects.toThrow(/disk is full/);
    // Nothing was removed: retention comes after the pointer.
    expect(await steps(m)).toEqual([1, 2]);
    expect(pointer(io).step).toBe(1);
    expect((await m.latest())!.step).toBe(2);
    io.failCommit = undefined;
    await m.save(3, { w: tensor(3) });
    expect(pointer(io).step).toBe(3);
    expect(await steps(m)).toEqual([3]);
  });

  it("overwriting a step replaces it atomically and keeps its sidecar in step", async () => {
    const io = new FaultyIO();
    const m = new CheckpointManager(new Fabric({ io }), "ckpt");
    await m.save(5, { w: tensor(1) }, { loss: 1 });
    io.failCommit = (p) => p.endsWith(".ckpt");
    await expect(m.save(5, { w: tensor(2) }, { loss: 2 })).rejects.toThrow();
    expect((await m.latest())!.metrics).toEqual({ loss: 1 });
    io.failCommit = undefined;
    await m.save(5, { w: tensor(2) }, { loss: 2 });
    expect((await m.latest())!.metrics).toEqual({ loss: 2 });
    const r = await m.restore();
    expect(Array.from((await (r!.remainder.w as HostTensor).data()) as Float32Array)).toEqual([2, 2, 2, 2]);
  });

  it("removes orphan sidecars left by a save that died before its commit", async () => {
    const io = new MemoryIO();
    const m = new CheckpointManager(new Fabric({ io }), "ckpt", { keepLast: 3 });
    io.files.set("ckpt/step-000000004.ckpt.meta.json", new TextEncoder().encode('{"step":4,"metrics":{}}'));
    await m.save(1, { w: tensor(1) });
    expect(names(io)).not.toContain("step-000000004.ckpt.meta.json");
  });

  it("ignores a damaged sidecar (the checkpoint is kept, its metrics unknown) with a warning", async () => {
    const io = new MemoryIO();
    const warnings: string[] = [];
    const m = new CheckpointManager(new Fabric({ io }), "ckpt", { onWarning: (w) => warnings.push(w) });
    await m.save(1, { w: tensor(1) }, { loss: 1 });
    io.files.set("ckpt/step-000000001.ckpt.meta.json", new TextEncoder().encode("{garbage"));
    expect(await m.list()).toMatchObject([{ step: 1, metrics: {} }]);
    expect(warnings.join("\n")).toMatch(/metrics of ckpt\/step-000000001\.ckpt are unreadable/);
  });

  it("works with the safetensors format by extension", async () => {
    const io = new MemoryIO();
    const m = new CheckpointManager(new Fabric({ io }), "ckpt", { extension: ".safetensors", keepLast: 1 });
    await m.save(1, { w: tensor(1), step: 1 });
    await m.save(2, { w: tensor(2), step: 2 });
    expect(names(io)).toEqual(["latest", "step-000000002.safetensors", "step-000000002.safetensors.meta.json"]);
    const state = { step: 0 };
    const r = await m.restore(state);
    expect(state.step).toBe(2);
    expect(r!.step).toBe(2);
  });
});

describe("CheckpointManager: restore", () => {
  it("returns null in an empty folder, and resumes a model in place from the newest", async () => {
    const io = new MemoryIO();
    const fabric = new Fabric({ io });
    const m = new CheckpointManager(fabric, "ckpt", { keepLast: 2 });
    expect(await m.restore({ step: 0 })).toBeNull();
    expect(await m.latest()).toBeNull();
    const model = mlp(1);
    for (const s of [10, 20, 30]) await m.save(s, { model, step: s, extra: "x" }, { loss: s });
    const fresh = mlp(7);
    const state = { model: fresh, step: 0 };
    const r = await m.restore(state);
    expect(r).toMatchObject({ step: 30, metrics: { loss: 30 }, skipped: [] });
    expect(state.step).toBe(30);
    expect(r!.remainder).toEqual({ extra: "x" });
    expect(weightBits(fresh)).toEqual(weightBits(model));
  });

  it("skips a damaged newest checkpoint with a warning, never deletes it, and does not count it", async () => {
    const io = new MemoryIO();
    const warnings: string[] = [];
    const m = new CheckpointManager(new Fabric({ io }), "ckpt", { keepLast: 2, onWarning: (w) => warnings.push(w) });
    await m.save(1, { w: tensor(1), step: 1 });
    await m.save(2, { w: tensor(2), step: 2 });
    // Damage step 2: flip a byte of its tensor record (four 2.0f values: 00 00 00 40 ...).
    const bytes = io.files.get("ckpt/step-000000002.ckpt")!;
    const at = Buffer.from(bytes).indexOf(Buffer.from("00000040".repeat(4), "hex"));
    expect(at).toBeGreaterThan(0);
    bytes[at + 3]! ^= 0xff;
    const state = { w: HostTensor.fromValues("float32", [4], [0, 0, 0, 0]), step: 0 };
    const r = await m.restore(state);
    expect(r!.step).toBe(1);
    expect(state.step).toBe(1);
    expect(r!.skipped.map((s) => s.path)).toEqual(["ckpt/step-000000002.ckpt"]);
    expect(r!.skipped[0]!.error).toBeInstanceOf(CorruptCheckpointError);
    expect(warnings.join("\n")).toMatch(/skipping the damaged checkpoint ckpt\/step-000000002\.ckpt \(step 2\).*CRC32/s);
    expect((await m.latest())!.step).toBe(1);
    // Training goes on from step 1: the damaged file stays, and keepLast counts only valid ones.
    await m.save(3, { w: tensor(3), step: 3 });
    await m.save(4, { w: tensor(4), step: 4 });
    expect(await steps(m)).toEqual([2, 3, 4]);
    expect(io.files.get("ckpt/step-000000002.ckpt")).toBe(bytes);
  });

  it("skips truncated and empty files too", async () => {
    const io = new MemoryIO();
    const m = new CheckpointManager(new Fabric({ io }), "ckpt", { onWarning: () => {} });
    for (const s of [1, 2, 3]) await m.save(s, { step: s });
    io.files.set("ckpt/step-000000003.ckpt", io.files.get("ckpt/step-000000003.ckpt")!.subarray(0, 100));
    io.files.set("ckpt/step-000000002.ckpt", new Uint8Array(0));
    const state = { step: 0 };
    expect((await m.restore(state))!.skipped.length).toBe(2);
    expect(state.step).toBe(1);
  });

  it("throws, naming every file, when checkpoints exist but none loads", async () => {
    const io = new MemoryIO();
    const m = new CheckpointManager(new Fabric({ io }), "ckpt", { onWarning: () => {} });
    await m.save(1, { step: 1 });
    io.files.set("ckpt/step-000000001.ckpt", new Uint8Array(10));
    await expect(m.restore({ step: 0 })).rejects.toThrow(/none of the 1 checkpoints in ckpt can be loaded \(ckpt\/step-000000001\.ckpt\)/);
  });

  it("does not skip on a state that does not match (every checkpoint would fail the same way)", async () => {
    const io = new MemoryIO();
    const m = new CheckpointManager(new Fabric({ io }), "ckpt");
    await m.save(1, { step: 1 });
    await m.save(2, { step: 2 });
    await expect(m.restore({ step: 0, missing: 1 })).rejects.toThrow(StrictLoadError);
    expect((await m.restore({ step: 0, missing: 1 }, { strict: false }))!.step).toBe(2);
  });
});

describe("CheckpointManager: async saves", () => {
  it("returns once staged; done settles after the commit, pointer and retention", async () => {
    const io = new MemoryIO();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    // Hold the commit of step 2's checkpoint until the gate opens.
    const openWrite = io.openWrite.bind(io);
    io.openWrite = async (path: string) => {
      const w = await openWrite(path);
      if (!path.endsWith("step-000000002.ckpt")) return w;
      return { get position() { return w.position; }, write: (c) => w.write(c), abort: () => w.abort(), commit: async () => { await gate; await w.commit(); } };
    };
    const m = new CheckpointManager(new Fabric({ io }), "ckpt", { keepLast: 1, saveOptions: { async: true } });
    await (await m.save(1, { w: tensor(1) })).done;
    const h = await m.save(2, { w: tensor(2) });
    expect(h.saved).toBe(true);
    expect(io.files.has("ckpt/step-000000002.ckpt")).toBe(false);
    expect(pointer(io).step).toBe(1);
    release();
    expect(await h.done).toMatchObject({ step: 2 });
    expect(names(io)).toEqual(["latest", "step-000000002.ckpt", "step-000000002.ckpt.meta.json"]);
  });

  it("an unobserved async failure is thrown by the next save; its sidecar is removed", async () => {
    const io = new FaultyIO();
    const m = new CheckpointManager(new Fabric({ io }), "ckpt");
    await m.save(1, { w: tensor(1) });
    io.failCommit = (p) => p.endsWith("step-000000002.ckpt");
    const h = await m.save(2, { w: tensor(2) }, undefined, { async: true });
    expect(h.saved).toBe(true);
    await expect(m.save(3, { w: tensor(3) })).rejects.toThrow(/disk is full/);
    expect(names(io)).not.toContain("step-000000002.ckpt.meta.json");
    // Once reported, the failure does not block later saves.
    await m.save(3, { w: tensor(3) });
    expect(await steps(m)).toEqual([1, 3]);
    // Observed through done, it is not thrown again.
    io.failCommit = (p) => p.endsWith("step-000000004.ckpt");
    const h4 = await m.save(4, { w: tensor(4) }, undefined, { async: true });
    await expect(h4.done).rejects.toThrow(/disk is full/);
    await m.save(5, { w: tensor(5) });
    expect(await steps(m)).toEqual([1, 3, 5]);
  });

  it("concurrent calls take turns in call order", async () => {
    const io = new FaultyIO();
    const m = new CheckpointManager(new Fabric({ io }), "ckpt");
    await Promise.all([1, 2, 3].map((s) => m.save(s, { w: tensor(s) })));
    expect(io.log.filter((l) => l.endsWith(".ckpt"))).toEqual([1, 2, 3].map((s) => `write ckpt/step-00000000${s}.ckpt`));
    expect(pointer(io).step).toBe(3);
  });
});

/** A strategy where rank 0 writes the file and every rank reads it, as replicated DDP does. */
class RankZeroWrites implements Strategy {
  readonly name = "rank-zero-writes";
  readonly #inner: SingleDeviceStrategy;
  constructor(readonly collective: Collective) {
    this.#inner = new SingleDeviceStrategy(collective);
  }
  async save(path: string, state: Record<string, unknown>, options: StrategySaveOptions, ctx: StrategyContext): Promise<void> {
    if (this.collective.rank === 0) await this.#inner.save(path, state, options, ctx);
    await this.collective.barrier(`save ${path}`);
  }
  load(path: string, state: Record<string, unknown> | undefined, options: StrategyLoadOptions, ctx: StrategyContext) {
    return this.#inner.load(path, state, options, ctx);
  }
  loadRaw(path: string, target: unknown, options: StrategyLoadRawOptions, ctx: StrategyContext) {
    return this.#inner.loadRaw(path, target, options, ctx);
  }
}

/** One shared store seen through a per-rank recorder of writes and removals. */
function rankIO(shared: MemoryIO, log: string[], rank: number): MemoryIO {
  const io = Object.create(shared) as MemoryIO;
  io.openWrite = async (p) => (log.push(`${rank} write ${p}`), shared.openWrite(p));
  io.remove = async (p) => (log.push(`${rank} remove ${p}`), shared.remove(p));
  return io;
}

describe("CheckpointManager on several ranks", () => {
  it("only rank 0 writes sidecars and the pointer and removes files; all ranks restore the same step", async () => {
    const shared = new MemoryIO();
    const log: string[] = [];
    const group = createLocalGroup(2, { timeoutMs: 10_000 });
    const managers = group.map((c, rank) => new CheckpointManager(new Fabric({ io: rankIO(shared, log, rank), strategy: new RankZeroWrites(c) }), "ckpt", { keepLast: 1, keepBest: { metric: "loss", mode: "min", k: 1 } }));
    for (const s of [1, 2, 3]) {
      await Promise.all(managers.map((m, rank) => m.save(s, { w: tensor(s), rank: 0 }, { loss: 10 - s * (s === 2 ? 3 : 1) })));
    }
    expect(log.filter((l) => l.startsWith("1 "))).toEqual([]);
    expect(log.some((l) => l.startsWith("0 remove ckpt/step-000000001.ckpt"))).toBe(true);
    // Best (step 2, loss 4) and newest (step 3).
    expect(await steps(managers[1]!)).toEqual([2, 3]);
    const restored = await Promise.all(managers.map((m) => m.restore({ rank: -1 })));
    expect(restored.map((r) => r!.step)).toEqual([3, 3]);
    await Promise.all(group.map((c) => c.close?.()));
  });
});

describe("CheckpointManager on local files", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "savepoint-manager-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("a save cleans temporaries that killed saves of other steps left in the folder", async () => {
    const m = new CheckpointManager(new Fabric(), dir, { keepLast: 2 });
    await m.save(1, { w: tensor(1) });
    // What a save of step 2 killed mid-write leaves behind. Linux pids never exceed 2^22.
    const dead = 4194304 + 7;
    writeFileSync(join(dir, `.step-000000002.ckpt.savepoint-tmp-${dead}-0badc0de`), "partial");
    writeFileSync(join(dir, `.step-000000002.ckpt.meta.json.savepoint-tmp-${dead}-0badc0de`), "partial");
    // A temporary of a live process (this one) and one from another machine are left alone.
    writeFileSync(join(dir, `.other.ckpt.savepoint-tmp-${process.pid}-00000000`), "mine");
    writeFileSync(join(dir, `.other.ckpt.savepoint-tmp-${dead}-00000000-ffffffff`), "remote");
    await m.save(3, { w: tensor(3) });
    expect(readdirSync(dir).filter((f) => f.includes("savepoint-tmp")).sort()).toEqual(
      [`.other.ckpt.savepoint-tmp-${dead}-00000000-ffffffff`, `.other.ckpt.savepoint-tmp-${process.pid}-00000000`].sort(),
    );
    expect(await steps(m)).toEqual([1, 3]);
    expect(JSON.parse(readFileSync(join(dir, "latest"), "utf8"))).toEqual({ step: 3, checkpoint: "step-000000003.ckpt" });
  });
});
