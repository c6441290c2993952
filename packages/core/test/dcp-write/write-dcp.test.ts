import { describe, expect, it } from "vitest";
import { readTorchZip } from "../../src/formats/torch/read-torch-zip.js";
import { assembleDcpMetadata, encodeDcpMetadata, writeDcpMetadata } from "../../src/formats/dcp/write-dcp-metadata.js";
import { writeDcpShard, type DcpWriteItem, type DcpWrittenItem } from "../../src/formats/dcp/write-dcp-shard.js";
import { checkDcpTarget, dcpStagingFolder, discardDcpFolder, interruptedDcpSwap, publishDcpFolder, recoverDcpFolder } from "../../src/formats/dcp/dcp-folder-commit.js";
import { flattenStateDict } from "../../src/formats/dcp/flatten-state.js";
import { readDcpMetadata } from "../../src/formats/dcp/read-dcp-metadata.js";
import { rangeSource } from "../../src/io/range-source.js";
import { asTuple, CheckpointWriteError, CorruptCheckpointError, Fabric, HostTensor, InvalidArgumentError, isStoredTensor, MemoryIO, type StoredTensor } from "../../src/index.js";
import { boxBytes } from "../dcp/dcp-builder.js";

const weight = HostTensor.fromValues("float32", [5, 3], Array.from({ length: 15 }, (_, i) => i * 0.5 - 3));
const ids = HostTensor.fromValues("int64", [4], [1n, -2n, 3n, 1n << 40n]);

/** Rows [start, start + rows) of `t` as a chunk item. */
function rows(key: string, t: HostTensor, start: number, n: number): DcpWriteItem {
  const sizes = [n, ...t.shape.slice(1)];
  const offsets = t.shape.map((_, d) => (d === 0 ? start : 0));
  return { kind: "tensor", key, size: t.shape, offsets, source: new HostTensor(t.dtype, sizes, boxBytes(t, offsets, sizes)) };
}

/** A checkpoint written as 3 ranks would: the weight's rows 2 + 2 + 1, the rest by rank 0. */
async function writeThreeRanks(io: MemoryIO, folder: string): Promise<DcpWrittenItem[][]> {
  const perRank: DcpWriteItem[][] = [
    [rows("model.weight", weight, 0, 2), { kind: "tensor", key: "model.ids", size: [4], offsets: [0], source: ids }, { kind: "bytes", key: "optimizer.param_groups.0.lr", value: 0.01 }, { kind: "bytes", key: "optimizer.param_groups.0.betas", value: asTuple([0.9, 0.99]) }],
    [rows("model.weight", weight, 2, 2)],
    [rows("model.weight", weight, 4, 1)],
  ];
  return Promise.all(perRank.map((items, r) => writeDcpShard(items, { io, folder, file: `__${r}_0.distcp`, chunkBytes: 16 })));
}

const planned = new Map<string, (string | number)[]>([
  ["model.weight", ["model", "weight"]],
  ["model.ids", ["model", "ids"]],
  ["optimizer.param_groups.0.lr", ["optimizer", "param_groups", 0, "lr"]],
  ["optimizer.param_groups.0.betas", ["optimizer", "param_groups", 0, "betas"]],
]);

describe("DCP writer", () => {
  it("writes each rank's items as small torch zips, and a .metadata the DCP reader loads back into the whole state", async () => {
    const io = new MemoryIO();
    const written = await writeThreeRanks(io, "ck");
    expect(written[0]!.map((w) => [w.key, w.file, w.offset > 0 || w.key === "model.weight"])).toEqual([["model.weight", "__0_0.distcp", true], ["model.ids", "__0_0.distcp", true], ["optimizer.param_groups.0.lr", "__0_0.distcp", true], ["optimizer.param_groups.0.betas", "__0_0.distcp", true]]);
    // Every item is a complete torch zip at its range.
    const file = await io.openRead("ck/__1_0.distcp");
    const w = written[1]![0]!;
    const chunk = (await readTorchZip(rangeSource(file, w.offset, w.length, "chunk"), { where: "chunk", safe: "strict", verify: true })) as StoredTensor;
    expect([chunk.dtype, chunk.shape]).toEqual(["float32", [2, 3]]);
    await writeDcpMetadata(assembleDcpMetadata(written, { plannerData: planned, checkpointId: "/tmp/ck", saveId: "id-1" }), { io, folder: "ck" });

    const md = readDcpMetadata(io.files.get("ck/.metadata")!, { where: ".metadata", folder: "ck", safe: "strict" });
    expect(md.version).toBe("1.0.0");
    expect([md.checkpointId, md.saveId]).toEqual(["/tmp/ck", "id-1"]);
    const item = md.items.get("model.weight")!;
    expect(item.kind === "tensor" && item.chunks.map((c) => [c.offsets, c.sizes, c.storage.file])).toEqual([[[0, 0], [2, 3], "__0_0.distcp"], [[2, 0], [2, 3], "__1_0.distcp"], [[4, 0], [1, 3], "__2_0.distcp"]]);

    const tree = (await new Fabric({ io }).load("ck")) as Record<string, any>;
    expect(Buffer.from(await (tree.model.weight as StoredTensor).bytes())).toEqual(Buffer.from(weight.raw));
    expect(isStoredTensor(tree.model.ids) && (await tree.model.ids.data())).toEqual(BigInt64Array.from([1n, -2n, 3n, 1n << 40n]));
    expect(tree.optimizer.param_groups[0]).toEqual({ lr: 0.01, betas: [0.9, 0.99] });
  });

  it("writes .metadata.crc32 before .metadata; a flipped metadata byte fails the load naming it, a folder without the file loads", async () => {
    const io = new MemoryIO();
    const order: string[] = [];
    const openWrite = io.openWrite.bind(io);
    io.openWrite = async (path: string) => (order.push(path), openWrite(path));
    await writeDcpMetadata(assembleDcpMetadata(await writeThreeRanks(io, "ck"), { plannerData: planned }), { io, folder: "ck" });
    expect(order.slice(-2)).toEqual(["ck/.metadata.crc32", "ck/.metadata"]);
    const good = io.files.get("ck/.metadata")!;
    expect(new TextDecoder().decode(io.files.get("ck/.metadata.crc32")!)).toMatch(/^[0-9a-f]{8}\n$/);
    // A flip anywhere in the pickle, even one that still decodes, is caught.
    for (const at of [20, Math.floor(good.length / 2), good.length - 3]) {
      const bad = good.slice();
      bad[at]! ^= 0x01;
      io.files.set("ck/.metadata", bad);
      await expect(new Fabric({ io }).load("ck")).rejects.toThrow(CorruptCheckpointError);
      await expect(new Fabric({ io }).load("ck")).rejects.toThrow(/ck\/\.metadata is damaged: its CRC-32 is [0-9a-f]{8} but \.metadata\.crc32 beside it records/);
    }
    io.files.set("ck/.metadata", good);
    expect(((await new Fabric({ io }).load("ck")) as Record<string, any>).optimizer.param_groups[0].lr).toBe(0.01);
    // torch and Lightning write no such file: their folders load unchecked.
    io.files.delete("ck/.metadata.crc32");
    expect(((await new Fabric({ io }).load("ck")) as Record<string, any>).optimizer.param_groups[0].lr).toBe(0.01);
  });

  it("refuses metadata whose chunks do not cover a tensor, items written twice or never, and chunks outside their tensor", async () => {
    const io = new MemoryIO();
    const written = await writeThreeRanks(io, "ck");
    expect(() => encodeDcpMetadata(assembleDcpMetadata([written[0]!, written[2]!], { plannerData: planned }))).toThrow(/chunks of "model.weight" hold 9 elements/);
    expect(() => assembleDcpMetadata([written[0]!, written[0]!.slice(2)], { plannerData: planned })).toThrow(/written twice/);
    expect(() => assembleDcpMetadata([written[1]!], { plannerData: planned })).toThrow(/no rank wrote it/);
    expect(() => assembleDcpMetadata(written, { plannerData: new Map([...planned].slice(1)) })).toThrow(/not in the checkpoint's plan/);
    await expect(writeDcpShard([{ kind: "tensor", key: "k", size: [2], offsets: [1], source: HostTensor.fromValues("float32", [2], [1, 2]) }], { io, folder: "x", file: "__0_0.distcp", chunkBytes: 16 })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(io.files.has("x/__0_0.distcp")).toBe(false);
  });

  it("flattened keys and paths go into planner_data, so the state nests back as it was", async () => {
    const io = new MemoryIO();
    const state = { model: { "a.w": weight }, optimizer: { param_groups: [{ lr: 0.5, params: ["a.w"] }] } };
    const flat = flattenStateDict(state);
    const items: DcpWriteItem[] = flat.map((e) => (isStoredTensor(e.value) ? { kind: "tensor", key: e.key, size: e.value.shape, offsets: [0, 0], source: e.value } : { kind: "bytes", key: e.key, value: e.value }));
    const written = await writeDcpShard(items, { io, folder: "n", file: "__0_0.distcp", chunkBytes: 1 << 20 });
    await writeDcpMetadata(assembleDcpMetadata([written], { plannerData: new Map(flat.map((e) => [e.key, e.path])) }), { io, folder: "n" });
    const tree = (await new Fabric({ io }).load("n")) as Record<string, any>;
    expect(Object.keys(tree.model)).toEqual(["a.w"]);
    expect(tree.optimizer).toEqual({ param_groups: [{ lr: 0.5, params: ["a.w"] }] });
  });
});

describe("DCP folder commit", () => {
  it("publishes a staged folder at the target, replacing an older checkpoint folder whole", async () => {
    const io = new MemoryIO();
    io.files.set("c/x/.metadata", new Uint8Array([1]));
    io.files.set("c/x/__2_0.distcp", new Uint8Array([2])); // from a save by more ranks
    const staging = dcpStagingFolder("c/x", "abc");
    expect(staging).toBe("c/.x.savepoint-dcp-abc");
    io.files.set(`${staging}/.metadata`, new Uint8Array([3]));
    io.files.set(`${staging}/__0_0.distcp`, new Uint8Array([4]));
    await publishDcpFolder(io, staging, "c/x", "abc");
    expect([...io.files.keys()].sort()).toEqual(["c/x/.metadata", "c/x/__0_0.distcp"]);
    expect(dcpStagingFolder("x", "1")).toBe(".x.savepoint-dcp-1");
  });

  it("refuses to replace a file, or a folder holding anything but a checkpoint's files", async () => {
    const io = new MemoryIO();
    io.files.set("c/x", new Uint8Array([1]));
    io.files.set("c/.x.savepoint-dcp-s/__0_0.distcp", new Uint8Array([2]));
    await expect(publishDcpFolder(io, "c/.x.savepoint-dcp-s", "c/x", "s")).rejects.toBeInstanceOf(CheckpointWriteError);
    io.files.set("d/notes.txt", new Uint8Array([1]));
    io.files.set("d/.metadata", new Uint8Array([1]));
    await expect(checkDcpTarget(io, "d")).rejects.toThrow(/holds other files \("notes.txt"\)/);
    io.files.delete("d/notes.txt");
    await expect(checkDcpTarget(io, "d")).resolves.toBeUndefined();
    expect(io.files.has("c/x")).toBe(true);
  });

  it("before a save, removes everything earlier saves of the same target left, complete staging folders too", async () => {
    const io = new MemoryIO();
    io.files.set("c/x/.metadata", new Uint8Array([1]));
    io.files.set("c/.x.savepoint-dcp-dead/__0_0.distcp", new Uint8Array([2])); // died before its metadata
    io.files.set("c/.x.savepoint-dcp-done/.metadata", new Uint8Array([3])); // complete, killed before its swap: load shows c/x
    io.files.set("c/.x.savepoint-old-older/.metadata", new Uint8Array([4])); // set aside by a swap; the target is complete
    io.files.set("c/.x.savepoint-dcp-s/__0_0.distcp", new Uint8Array([5])); // the save in progress
    io.files.set("c/.y.savepoint-dcp-other/__0_0.distcp", new Uint8Array([6])); // another target's
    await recoverDcpFolder(io, "c/x", "s");
    expect([...io.files.keys()].sort()).toEqual(["c/.x.savepoint-dcp-s/__0_0.distcp", "c/.y.savepoint-dcp-other/__0_0.distcp", "c/x/.metadata"]);
  });

  it("a swap cut between its renames: load reads the complete staging folder, and the next save puts it in place", async () => {
    const io = new MemoryIO();
    const staging = "c/.x.savepoint-dcp-new";
    await writeDcpMetadata(assembleDcpMetadata(await writeThreeRanks(io, staging), { plannerData: planned }), { io, folder: staging });
    io.files.set("c/.x.savepoint-old-new/.metadata", new Uint8Array([9])); // the previous checkpoint, set aside
    expect(await interruptedDcpSwap(io, "c/x")).toBe(staging);
    const loaded = (await new Fabric({ io }).load("c/x")) as { model: { ids: StoredTensor } };
    expect(await loaded.model.ids.bytes()).toEqual(await ids.bytes());
    const files = [...io.files.keys()].filter((k) => k.startsWith(staging)).map((k) => k.slice(staging.length)).sort();
    await recoverDcpFolder(io, "c/x", "s");
    expect([...io.files.keys()].sort()).toEqual(files.map((f) => `c/x${f}`));
    expect(await interruptedDcpSwap(io, "c/x")).toBeUndefined();
  });

  it("a swap cut between its renames with the staging folder gone: the old copy is the checkpoint and goes back in place", async () => {
    const io = new MemoryIO();
    io.files.set("c/.x.savepoint-dcp-half/__0_0.distcp", new Uint8Array([1])); // being discarded: its metadata went first
    io.files.set("c/.x.savepoint-old-a/.metadata", new Uint8Array([2]));
    expect(await interruptedDcpSwap(io, "c/x")).toBe("c/.x.savepoint-old-a");
    await recoverDcpFolder(io, "c/x", "s");
    expect([...io.files.keys()].sort()).toEqual(["c/x/.metadata"]);
    expect(io.files.get("c/x/.metadata")).toEqual(new Uint8Array([2]));
  });

  it("discards a folder metadata first, so a removal cut short never looks complete", async () => {
    const io = new MemoryIO();
    const removed: string[] = [];
    const remove = io.remove.bind(io);
    io.remove = async (p: string) => {
      removed.push(p);
      await remove(p);
    };
    io.files.set("c/f/.metadata", new Uint8Array([1]));
    io.files.set("c/f/__0_0.distcp", new Uint8Array([1]));
    await discardDcpFolder(io, "c/f");
    expect(removed).toEqual(["c/f/.metadata", "c/f"]);
    expect(io.files.size).toBe(0);
  });
});
