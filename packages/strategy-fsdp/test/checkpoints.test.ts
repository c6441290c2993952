import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { createLocalGroup, createStrategy, Fabric, HostTensor, type Collective, isStoredTensor, MemoryIO, readDcpMetadata, StrictLoadError, type ByteSource, type CheckpointIO, type DcpTensorItem } from "@savepoint/core";
import { optimizerStateRows } from "../src/rows-to-load.js";
import { FSDPStrategy } from "../src/index.js";
import { closeGroups, fullState, mlp, ranks, tf, tfl, train, useCpu, wide, type Rank } from "./helpers.js";

beforeAll(useCpu);
afterEach(closeGroups);

/** Each rank's reads, as [rank, file, offset, length]. */
function loggedIO(mem: MemoryIO, rank: number, reads: [number, string, number, number][]): CheckpointIO {
  return {
    name: `logged (rank ${rank})`,
    stat: (p) => mem.stat(p),
    list: (p) => mem.list(p),
    remove: (p) => mem.remove(p),
    mkdir: () => mem.mkdir(),
    rename: (a, b) => mem.rename(a, b),
    openWrite: (p) => mem.openWrite(p),
    async openRead(p) {
      const s = await mem.openRead(p);
      const logged: ByteSource = { name: s.name, size: s.size, close: () => s.close(), read: (o, l, into) => (reads.push([rank, p, o, l]), s.read(o, l, into)) };
      return logged;
    },
  };
}

const stateOf = (r: Rank, iteration = 0) => ({ model: r.model, optimizer: r.optimizer, iteration, hparams: { lr: 0.01 } });

async function trainedAndSaved(io: MemoryIO, path: string, type: "sharded" | "full"): Promise<Record<string, string>> {
  const group = ranks(2, io, () => mlp(1), type);
  await train(group, 0, 6);
  await Promise.all(group.map((r) => r.fabric.save(path, stateOf(r, 6))));
  return fullState(group);
}

describe("FSDP checkpoints: resharding", () => {
  for (const type of ["sharded", "full"] as const) {
    it(`train on 2 ranks, save ${type}, resume on 1, 2 and 4 ranks: model and optimizer state equal the 2-rank run's, bit for bit`, async () => {
      const io = new MemoryIO();
      const saved = await trainedAndSaved(io, "ck/step-6", type);
      expect(io.files.has(type === "sharded" ? "ck/step-6/.metadata" : "ck/step-6")).toBe(true);
      for (const n of [1, 2, 4]) {
        const group = ranks(n, io, () => mlp(9), type);
        const states = group.map((r) => stateOf(r));
        const remainders = await Promise.all(group.map((r, i) => r.fabric.load("ck/step-6", states[i])));
        expect(remainders.every((x) => Object.keys(x).length === 0)).toBe(true);
        expect(states.map((s) => s.iteration)).toEqual(group.map(() => 6));
        expect(fullState(group), `${n} ranks`).toEqual(saved);
        // The module's own variables hold the gathered weights after a load.
        expect(group[n - 1]!.model.module.weights.map((w) => Array.from(w.read().dataSync() as Float32Array))).toEqual(mlpWeights(group[0]!));
      }
    });
  }

  it("resumed on 2 ranks, training goes on exactly as the uninterrupted run", async () => {
    const io = new MemoryIO();
    await trainedAndSaved(io, "ck/s", "sharded");
    const resumed = ranks(2, io, () => mlp(9));
    await Promise.all(resumed.map((r) => r.fabric.load("ck/s", stateOf(r))));
    await train(resumed, 6, 10);
    const straight = ranks(2, new MemoryIO(), () => mlp(1));
    await train(straight, 0, 10);
    expect(fullState(resumed)).toEqual(fullState(straight));
  });

  it("a sharded checkpoint holds Lightning's layout: one __R_0.distcp per rank with its rows (dim-0 chunks), meta.pt, .metadata", async () => {
    const io = new MemoryIO();
    await trainedAndSaved(io, "ck/x", "sharded");
    expect([...io.files.keys()].filter((k) => k.startsWith("ck/")).sort()).toEqual(["ck/x/.metadata", "ck/x/.metadata.crc32", "ck/x/__0_0.distcp", "ck/x/__1_0.distcp", "ck/x/meta.pt"]);
    const md = readDcpMetadata(io.files.get("ck/x/.metadata")!, { where: ".metadata", folder: "ck/x", safe: "strict" });
    const kernel = md.items.get("model.dense.kernel") as DcpTensorItem;
    expect(kernel.size).toEqual([6, 5]);
    expect(kernel.chunks.map((c) => [c.offsets, c.sizes, c.storage.file])).toEqual([[[0, 0], [3, 5], "__0_0.distcp"], [[3, 0], [3, 5], "__1_0.distcp"]]);
    const exp = md.items.get("optimizer.state.dense_1.kernel.exp_avg") as DcpTensorItem; // 5 rows: 3 + 2
    expect(exp.chunks.map((c) => [c.offsets, c.sizes])).toEqual([[[0, 0], [3, 3]], [[3, 0], [2, 3]]]);
    expect((md.items.get("optimizer.state.dense.bias.step") as DcpTensorItem).chunks.map((c) => [c.offsets, c.storage.file])).toEqual([[[], "__0_0.distcp"]]);
    expect(md.items.get("optimizer.param_groups.0.params")?.kind).toBe("bytes");
    expect(md.plannerData?.get("optimizer.state.dense.kernel.exp_avg")).toEqual(["optimizer", "state", "dense.kernel", "exp_avg"]);
    // Read back without any state: the nesting of the saved state, tensors whole, optimizer keyed by name.
    const raw = (await new Fabric({ io }).load("ck/x")) as Record<string, any>;
    expect(Object.keys(raw).sort()).toEqual(["hparams", "iteration", "model", "optimizer"]);
    expect(raw.optimizer.param_groups[0].params).toEqual(["dense.kernel", "dense.bias", "dense_1.kernel", "dense_1.bias"]);
    expect(isStoredTensor(raw.optimizer.state["dense_1.kernel"].exp_avg)).toBe(true);
    expect(raw.iteration).toBe(6);
  });

  it("on a sharded load every rank reads only the chunks that overlap its rows (2 ranks saved, 3 load)", async () => {
    const mem = new MemoryIO();
    await trainedAndSaved(mem, "ck/r", "sharded");
    const md = readDcpMetadata(mem.files.get("ck/r/.metadata")!, { where: ".metadata", folder: "ck/r", safe: "strict" });
    const reads: [number, string, number, number][] = [];
    const group = ranks(3, mem, () => mlp(9));
    const fabrics = group.map((r, rank) => new Fabric({ strategy: r.strategy, io: loggedIO(mem, rank, reads) }));
    await Promise.all(group.map((r, i) => fabrics[i]!.load("ck/r", { model: r.model })));
    for (const item of md.items.values()) {
      if (item.kind !== "tensor" || !item.key.startsWith("model.") || item.size.length === 1) continue;
      for (const c of item.chunks) {
        const touched = (rank: number) => reads.some(([r, f, o]) => r === rank && f === `ck/r/${c.storage.file}` && o >= c.storage.offset && o < c.storage.offset + c.storage.length);
        for (let rank = 0; rank < 3; rank++) {
          const rows = group[rank]!.model.parameter(item.key.slice("model.".length))!.range;
          const overlaps = rows.rows > 0 && rows.start < c.offsets[0]! + c.sizes[0]! && c.offsets[0]! < rows.start + rows.rows;
          expect(touched(rank), `rank ${rank}, ${item.key} chunk at ${c.offsets}`).toBe(overlaps);
        }
      }
    }
  });

  it("on a full load every rank reads its rows, and checks the CRCs of its share of the records only", async () => {
    const mem = new MemoryIO();
    const group2 = ranks(2, mem, () => wide(1), "full");
    await Promise.all(group2.map((r) => r.fabric.save("big.ckpt", { model: r.model }))); // a 64 × 256 kernel: 64 KiB
    const size = mem.files.get("big.ckpt")!.byteLength;
    for (const verify of [false, true]) {
      const reads: [number, string, number, number][] = [];
      const group = ranks(3, mem, () => wide(9), "full");
      const fabrics = group.map((r, rank) => new Fabric({ strategy: r.strategy, io: loggedIO(mem, rank, reads), verify }));
      await Promise.all(group.map((r, i) => fabrics[i]!.load("big.ckpt", { model: r.model })));
      expect(fullState(group)).toEqual(fullState(group2));
      const byRank = [0, 1, 2].map((rank) => reads.filter(([r]) => r === rank).reduce((n, [, , , l]) => n + l, 0));
      const total = byRank.reduce((a, b) => a + b, 0);
      if (!verify) for (const n of byRank) expect(n, `bytes read by one rank (file: ${size})`).toBeLessThan(size / 3 + 8192);
      // With CRCs: the records once between all ranks, plus each rank's rows.
      else expect(total, `bytes read by all ranks (file: ${size})`).toBeLessThan(2 * size + 3 * 8192);
    }
  });
});

describe("FSDP checkpoints: the folder", () => {
  it("saving over a sharded checkpoint replaces it whole (3 ranks, then 2), and clears what a dead save left beside it", async () => {
    const io = new MemoryIO();
    io.files.set("ck/.x.savepoint-dcp-dead/__0_0.distcp", new Uint8Array(3));
    const three = ranks(3, io, () => mlp(1));
    await Promise.all(three.map((r) => r.fabric.save("ck/x", { model: r.model })));
    const two = ranks(2, io, () => mlp(2));
    await Promise.all(two.map((r) => r.fabric.save("ck/x/", { model: r.model })));
    expect([...io.files.keys()].sort()).toEqual(["ck/x/.metadata", "ck/x/.metadata.crc32", "ck/x/__0_0.distcp", "ck/x/__1_0.distcp", "ck/x/meta.pt"]);
    const one = ranks(1, io, () => mlp(9));
    await one[0]!.fabric.load("ck/x", { model: one[0]!.model });
    expect(fullState(one)["model:dense.kernel"]).toEqual(fullState(two)["model:dense.kernel"]);
  });

  it("on a storage without renames, writes the folder in place (.metadata last), a second save replacing the first", async () => {
    const mem = new MemoryIO();
    const noRename: CheckpointIO = { name: "no renames", stat: (p) => mem.stat(p), openRead: (p) => mem.openRead(p), openWrite: (p) => mem.openWrite(p), list: (p) => mem.list(p), remove: (p) => mem.remove(p) };
    for (const seed of [1, 2]) {
      const group = ranks(2, mem, () => mlp(seed)).map((r) => ({ ...r, fabric: new Fabric({ strategy: r.strategy, io: noRename }) }));
      await Promise.all(group.map((r) => r.fabric.save("p", { model: r.model })));
    }
    expect([...mem.files.keys()].sort()).toEqual(["p/.metadata", "p/.metadata.crc32", "p/__0_0.distcp", "p/__1_0.distcp", "p/meta.pt"]);
    const one = ranks(1, mem, () => mlp(9));
    await one[0]!.fabric.load("p", { model: one[0]!.model });
    expect(mlpWeights(one[0]!)).toEqual(mlp(2).weights.map((w) => Array.from(w.read().dataSync() as Float32Array)));
  });

  it("refuses to replace a folder that holds other files than a checkpoint's, writing nothing", async () => {
    const io = new MemoryIO();
    io.files.set("mine/notes.txt", new Uint8Array([1]));
    const group = ranks(2, io, () => mlp(1));
    const results = await Promise.allSettled(group.map((r) => r.fabric.save("mine", { model: r.model })));
    expect(results.every((r) => r.status === "rejected" && /holds other files \("notes.txt"\)/.test(String(r.reason)))).toBe(true);
    expect([...io.files.keys()]).toEqual(["mine/notes.txt"]);
  });

  it('registers as "fsdp" (sharded by default), checks its options, and accepts async saves (finished before returning)', async () => {
    const s = createStrategy("fsdp") as FSDPStrategy;
    expect(s).toBeInstanceOf(FSDPStrategy);
    expect(s.stateDictType).toBe("sharded");
    expect(() => new FSDPStrategy({ stateDictType: "gathered" as never })).toThrow(/"sharded" or "full"/);
    expect(() => new FSDPStrategy({ writeTimeoutMs: 0 })).toThrow(/writeTimeoutMs/);
    const io = new MemoryIO();
    const group = ranks(2, io, () => mlp(1));
    const handles = await Promise.all(group.map((r) => r.fabric.save("a", { model: r.model }, { async: true })));
    await Promise.all(handles.map((h) => h.done));
    expect(io.files.has("a/.metadata")).toBe(true);
  });
});

describe("FSDP checkpoints: full save", () => {
  /** Saves a trained 2-rank model as one full file, recording the bytes of every gather rank 0 receives. */
  async function fullSave(chunkBytes?: number) {
    const io = new MemoryIO();
    const group = createLocalGroup(2, { timeoutMs: 5000 });
    const gathered: { tag: string; bytes: number }[] = [];
    const c0 = group[0]!;
    const spy: Collective = {
      rank: c0.rank,
      worldSize: c0.worldSize,
      barrier: (t, o) => c0.barrier(t, o),
      broadcast: (t, v, r, o) => c0.broadcast(t, v, r, o),
      async allGather<T>(tag: string, v: T, o?: { timeoutMs?: number }) {
        const all = await c0.allGather<T>(tag, v, o);
        if (tag.startsWith("fsdp full save: gather")) gathered.push({ tag, bytes: all.reduce((n, p) => n + ((p as { bytes?: Uint8Array }).bytes?.byteLength ?? 0), 0) });
        return all;
      },
    };
    const rs = [spy, group[1]!].map((collective) => {
      const strategy = new FSDPStrategy({ collective, stateDictType: "full" });
      return { strategy, fabric: new Fabric({ strategy, io, chunkBytes }), model: strategy.setupModule(wide(1)), optimizer: tf.train.adam(0.01) };
    });
    await train(rs, 0, 1, 64, 8);
    await Promise.all(rs.map((r) => r.fabric.save("full.ckpt", { model: r.model, optimizer: r.optimizer })));
    await Promise.all(group.map((c) => c.close?.()));
    return { io, gathered, models: rs.map((r) => r.model) };
  }

  it("gathers on rank 0 one tensor at a time while writing: no gather holds more than the largest tensor", async () => {
    const { io, gathered } = await fullSave();
    // 4 sharded weights, each with its Adam moments: 12 gathers, the largest the 64 × 256 kernel.
    expect(gathered.length).toBe(12);
    expect(Math.max(...gathered.map((g) => g.bytes))).toBe(64 * 256 * 4);
    const raw = (await new Fabric({ io }).load("full.ckpt")) as Record<string, any>;
    expect(raw.model["dense.kernel"].shape).toEqual([64, 256]);
    expect(Object.keys(raw.optimizer.state)).toEqual(["dense.kernel", "dense.bias", "dense_1.kernel", "dense_1.bias"]);
  });

  it("gathers a tensor larger than the write chunk in pieces of the chunk, never whole", async () => {
    const { io, gathered, models } = await fullSave(4096);
    // The 64 × 256 kernel (64 KiB) and its two moments come in 16 pieces each.
    expect(Math.max(...gathered.map((g) => g.bytes))).toBe(4096);
    expect(gathered.filter((g) => g.tag.endsWith("gather model/dense.kernel")).length).toBe(16);
    const raw = (await new Fabric({ io }).load("full.ckpt")) as Record<string, any>;
    // The file holds the ranks' rows in order: rank 0's, then rank 1's.
    const rows = models.flatMap((m) => Array.from(m.parameter("dense.kernel")!.local.dataSync()));
    expect(Array.from(new Float32Array((await raw.model["dense.kernel"].bytes()).buffer))).toEqual(rows);
  });
});

function mlpWeights(r: Rank): number[][] {
  return r.model.module.weights.map((w) => Array.from(w.read().dataSync() as Float32Array));
}

describe("FSDP checkpoints: Fabric semantics (unlike Lightning, for sharded checkpoints too)", () => {
  it("strict: false skips missing and unexpected model and optimizer keys in a sharded checkpoint; strict names them", async () => {
    const io = new MemoryIO();
    const group = ranks(2, io, () => mlp(1));
    await train(group, 0, 2);
    // Only the kernels of the model, and the optimizer's state, are saved.
    await Promise.all(group.map((r) => r.fabric.save("f", { model: r.model, optimizer: r.optimizer }, { filter: { model: (k) => k.endsWith("kernel") } })));
    const metaKeys = [...readDcpMetadata(io.files.get("f/.metadata")!, { where: "m", folder: "f", safe: "strict" }).items.keys()];
    expect(metaKeys.filter((k) => k.startsWith("model."))).toEqual(["model.dense.kernel", "model.dense_1.kernel"]);

    const fresh = ranks(2, io, () => mlp(9));
    const results = await Promise.allSettled(fresh.map((r) => r.fabric.load("f", { model: r.model })));
    for (const res of results) {
      expect((res as PromiseRejectedResult).reason).toBeInstanceOf(StrictLoadError);
      expect(String((res as PromiseRejectedResult).reason)).toMatch(/missing key\(s\) "dense.bias", "dense_1.bias"|rank \d failed/);
    }
    await Promise.all(fresh.map((r) => r.fabric.load("f", { model: r.model, optimizer: r.optimizer }, { strict: false })));
    const saved = fullState(group);
    const loaded = fullState(fresh);
    for (const k of ["model:dense.kernel", "model:dense_1.kernel", "opt:accumulatedFirstMoment:dense.bias", "opt:iterations"]) expect(loaded[k], k).toEqual(saved[k]);
    expect(loaded["model:dense.bias"]).not.toEqual(saved["model:dense.bias"]);


    // A model with only the first layer: strict refuses the rest; strict: false loads the first layer and its optimizer state.
    const first = ranks(2, io, () => tfl.sequential({ layers: [tfl.layers.dense({ units: 5, inputShape: [6] })] }));
    const refused = await Promise.allSettled(first.map((r) => r.fabric.load("f", { model: r.model, optimizer: r.optimizer })));
    expect(refused.every((r) => r.status === "rejected" && r.reason instanceof StrictLoadError)).toBe(true);
    await Promise.all(first.map((r) => r.fabric.load("f", { model: r.model, optimizer: r.optimizer }, { strict: false })));
    const part = fullState(first);
    expect([part["model:dense.kernel"], part["opt:accumulatedSecondMoment:dense.kernel"]]).toEqual([saved["model:dense.kernel"], saved["opt:accumulatedSecondMoment:dense.kernel"]]);
  });

  it("optimizer state of a parameter the models do not have: refused under strict, skipped otherwise", () => {
    const params = [{ index: 0, fqn: "a.kernel", qualified: "model.a.kernel", shape: [4, 2], sharded: true, range: { start: 2, rows: 2 } }];
    const saved = { "a.kernel": { step: HostTensor.fromValues("float32", [], [3]), exp_avg: HostTensor.fromValues("float32", [4, 2], [0, 1, 2, 3, 4, 5, 6, 7]) }, "b.kernel": { step: 1 } };
    expect(() => optimizerStateRows(saved, params, true, "optimizer")).toThrow(/optimizer state for "b.kernel".*strict: false/);
    const rows = optimizerStateRows(saved, params, false, "optimizer") as Record<string, Record<string, HostTensor>>;
    expect(Object.keys(rows)).toEqual(["0"]);
    expect(rows["0"]!.exp_avg!.shape).toEqual([2, 2]);
  });

  it("restores stateful objects of meta.pt in place and returns what was not asked for", async () => {
    const io = new MemoryIO();
    const group = ranks(2, io, () => mlp(1));
    class Counter {
      count = 0;
      stateDict() {
        return { count: this.count };
      }
      loadStateDict(sd: { count: number }) {
        this.count = sd.count;
      }
    }
    await Promise.all(group.map((r) => { const c = new Counter(); c.count = 41; return r.fabric.save("m", { model: r.model, counter: c, note: "kept" }); }));
    const fresh = ranks(2, io, () => mlp(9));
    const counters = fresh.map(() => new Counter());
    const remainders = await Promise.all(fresh.map((r, i) => r.fabric.load("m", { model: r.model, counter: counters[i] })));
    expect(counters.map((c) => c.count)).toEqual([41, 41]);
    expect(remainders).toEqual([{ note: "kept" }, { note: "kept" }]);
  });

  it("loadRaw loads a bare state dict (any world size wrote it) into a sharded model, each rank taking its rows", async () => {
    const io = new MemoryIO();
    const plain = mlp(4);
    await new Fabric({ io }).save("plain.pt", { model: plain });
    const raw = (await new Fabric({ io }).load("plain.pt")).model;
    await new Fabric({ io }).save("sd.pt", raw as Record<string, unknown>);
    const group = ranks(3, io, () => mlp(9));
    await Promise.all(group.map((r) => r.fabric.loadRaw("sd.pt", r.model)));
    for (const r of group) expect(mlpWeights(r)).toEqual(plain.weights.map((w) => Array.from(w.read().dataSync() as Float32Array)));
  });

  it("a rank that saves other models than rank 0 makes every rank fail before anything is written", async () => {
    const io = new MemoryIO();
    const group = ranks(2, io, () => mlp(1));
    const results = await Promise.allSettled(group.map((r, rank) => r.fabric.save("bad", rank === 0 ? { model: r.model } : { other: r.model })));
    expect(results.every((r) => r.status === "rejected")).toBe(true);
    expect(String((results[0] as PromiseRejectedResult).reason)).toMatch(/rank 1 would save other model or optimizer entries/);
    expect(io.files.size).toBe(0);
  });
});
