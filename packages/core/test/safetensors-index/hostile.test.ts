import { describe, expect, it } from "vitest";
import { safetensorsIndexFormat } from "../../src/formats/safetensors-index/safetensors-index-format.js";
import { CheckpointNotFoundError, CorruptCheckpointError, MemoryIO, type StoredTensor } from "../../src/index.js";
import { indexFabric, putIndex, putShard } from "./util.js";
import "@tensorflow/tfjs-backend-cpu";

const INDEX = "ck/model.safetensors.index.json";
const S1 = "model-00001-of-00002.safetensors";
const S2 = "model-00002-of-00002.safetensors";

/** A valid two-shard set: a, b in shard 1; c in shard 2. */
async function validSet(): Promise<MemoryIO> {
  const io = new MemoryIO();
  await putShard(io, `ck/${S1}`, { a: [1, 2], b: [3] });
  await putShard(io, `ck/${S2}`, { c: [4, 5, 6] });
  putIndex(io, INDEX, { c: S2, a: S1, b: S1 });
  return io;
}

async function loadError(io: MemoryIO, path = INDEX): Promise<Error> {
  return indexFabric(io).load(path).then(
    () => {
      throw new Error("expected the load to fail");
    },
    (e: unknown) => e as Error,
  );
}

describe("hostile sharded safetensors indexes", () => {
  it("baseline: the valid set loads in weight_map order, also from a bare relative path", async () => {
    const io = await validSet();
    const tree = await indexFabric(io).load(INDEX);
    expect(Object.keys(tree)).toEqual(["c", "a", "b"]);
    expect(Array.from((await (tree.c as StoredTensor).data()) as Float32Array)).toEqual([4, 5, 6]);
    io.files.set("model.safetensors.index.json", io.files.get(INDEX)!);
    io.files.set(S1, io.files.get(`ck/${S1}`)!);
    io.files.set(S2, io.files.get(`ck/${S2}`)!);
    expect(Array.from((await ((await indexFabric(io).load("model.safetensors.index.json")).a as StoredTensor).data()) as ArrayLike<number>)).toEqual([1, 2]);
  });

  it("refuses shard paths escaping the folder", async () => {
    for (const bad of ["../model-00001-of-00002.safetensors", "/etc/passwd", "sub/../../x.safetensors", "C:/x.safetensors"]) {
      const io = await validSet();
      io.files.set(`model-00001-of-00002.safetensors`, io.files.get(`ck/${S1}`)!);
      putIndex(io, INDEX, { a: bad, b: S1, c: S2 });
      const err = await loadError(io);
      expect(err, bad).toBeInstanceOf(CorruptCheckpointError);
      expect(err.message).toContain("outside the checkpoint folder");
      expect(err.message).toContain(INDEX);
      expect(err.message).toContain('"a"');
    }
  });

  it("reports a missing shard as CheckpointNotFoundError naming the index and file", async () => {
    const io = await validSet();
    io.files.delete(`ck/${S2}`);
    const err = await loadError(io);
    expect(err).toBeInstanceOf(CheckpointNotFoundError);
    expect(err.message).toContain(INDEX);
    expect(err.message).toContain(S2);
  });

  it("refuses a weight_map entry absent from its shard, naming tensor and shard", async () => {
    const io = await validSet();
    putIndex(io, INDEX, { a: S1, b: S1, c: S2, ghost: S2 });
    const err = await loadError(io);
    expect(err).toBeInstanceOf(CorruptCheckpointError);
    expect(err.message).toContain('"ghost"');
    expect(err.message).toContain(S2);
  });

  it("refuses shard tensors the index does not list, or lists under another shard", async () => {
    const io = await validSet();
    putIndex(io, INDEX, { a: S1, c: S2 });
    let err = await loadError(io);
    expect(err).toBeInstanceOf(CorruptCheckpointError);
    expect(err.message).toContain('"b"');
    expect(err.message).toContain("does not list it");
    await putShard(io, `ck/${S2}`, { b: [0], c: [4, 5, 6] });
    putIndex(io, INDEX, { a: S1, b: S1, c: S2 });
    err = await loadError(io);
    expect(err).toBeInstanceOf(CorruptCheckpointError);
    expect(err.message).toContain(`maps it to ${S1}`);
  });

  it("refuses malformed index JSON, duplicate keys and a damaged shard", async () => {
    for (const text of ['{"weight_map": {"a": "x", "a": "y"}}', '{"metadata": {}}', '{"weight_map": {"a": 3}}', '{"weight_map": []}', '{"metadata": 1, "weight_map": {}}', '{"weight_map": {', '{"weight_map": {"a": ""}}']) {
      const io = await validSet();
      putIndex(io, INDEX, text);
      const err = await loadError(io);
      expect(err, text).toBeInstanceOf(CorruptCheckpointError);
      expect(err.message).toContain(INDEX);
    }
    const io = await validSet();
    io.files.set(`ck/${S2}`, io.files.get(`ck/${S2}`)!.slice(0, -1));
    await expect(indexFabric(io).load(INDEX)).rejects.toThrow(CorruptCheckpointError);
  });

  it("detects by name and a JSON object head only", () => {
    const probe = (path: string, text: string) => ({ path, info: { kind: "file" as const, size: text.length }, head: new TextEncoder().encode(text) });
    expect(safetensorsIndexFormat.detect(probe("a/model.safetensors.index.json", '{\n  "metadata"'))).toBe(true);
    expect(safetensorsIndexFormat.detect(probe("a/MODEL.SAFETENSORS.INDEX.JSON", "{"))).toBe(true);
    expect(safetensorsIndexFormat.detect(probe("a/model.json", "{"))).toBe(false);
    expect(safetensorsIndexFormat.detect(probe("a/model.safetensors.index.json", "[]"))).toBe(false);
    expect(safetensorsIndexFormat.detect({ path: "a.safetensors.index.json", info: { kind: "directory", size: 0 }, entries: [] })).toBe(false);
  });
});
