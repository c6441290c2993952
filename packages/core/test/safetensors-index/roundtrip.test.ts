import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { itemSize, type DType } from "../../src/dtype.js";
import { readSafetensorsHeader } from "../../src/formats/safetensors/header.js";
import { crc32 } from "../../src/formats/zip/crc32.js";
import { safetensorsIndexFormatWith } from "../../src/formats/safetensors-index/safetensors-index-format.js";
import { HostTensor, InvalidArgumentError, MemoryIO, type AtomicWrite, type StoredTensor } from "../../src/index.js";
import { runPython, skipWithoutTorch } from "../helpers/python.js";
import { indexFabric, randomBytes } from "./util.js";
import "@tensorflow/tfjs-backend-cpu";

const LIMIT = 100;
const format = safetensorsIndexFormatWith({ maxShardSize: LIMIT });

/** A state dict with many dtypes, an empty and a scalar tensor, one tensor over the limit, nested names. */
function sample(): Record<string, unknown> {
  const t = (dtype: DType, shape: number[], seed: number): HostTensor =>
    new HostTensor(dtype, shape, randomBytes(shape.reduce((a, b) => a * b, 1) * itemSize(dtype), seed, dtype === "bool"));
  return {
    "embed.weight": t("float32", [4, 5], 1),
    layers: {
      0: { weight: t("float16", [3, 7], 2), bias: t("bfloat16", [7], 3) },
      1: { weight: t("float64", [2, 3], 4), mask: t("bool", [9], 5), steps: t("int64", [], 6) },
    },
    "big.weight": t("float32", [40], 7), // 160 bytes: over the limit, so a shard of its own
    "head.u8": t("uint8", [33], 8),
    "head.i16": t("int16", [0, 4], 9),
    "head.f8": t("float8_e4m3fn", [5], 10),
    "ünïcode.✓": t("int32", [6], 11),
  };
}

/** name → tensor as the writer should flatten `sample()`. */
function flatSample(): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  const visit = (o: Record<string, unknown>, prefix: string): void => {
    for (const [k, v] of Object.entries(o)) {
      const name = prefix ? `${prefix}.${k}` : k;
      if (v instanceof HostTensor) out.set(name, v);
      else visit(v as Record<string, unknown>, name);
    }
  };
  visit(sample(), "");
  return out;
}

describe("sharded safetensors round trip", () => {
  it("writes several shards within the limit, the index last, and reads back bit for bit", async () => {
    const io = new MemoryIO();
    const commits: string[] = [];
    const openWrite = io.openWrite.bind(io);
    io.openWrite = async (path: string): Promise<AtomicWrite> => {
      const w = await openWrite(path);
      const commit = w.commit.bind(w);
      return Object.assign(w, { commit: async () => (commits.push(path), commit()) });
    };
    const fabric = indexFabric(io, format);
    await fabric.save("out/model.safetensors.index.json", sample());

    const want = flatSample();
    const index = JSON.parse(new TextDecoder().decode(io.files.get("out/model.safetensors.index.json")!));
    const shardNames = [...new Set(Object.values(index.weight_map) as string[])].sort();
    const n = shardNames.length;
    // By hand: [80] [42+14] [48+9+8] [160 alone] [33+0+5+24] bytes, packed in order within 100.
    expect(n).toBe(5);
    expect(shardNames).toEqual(Array.from({ length: n }, (_, i) => `model-${String(i + 1).padStart(5, "0")}-of-${String(n).padStart(5, "0")}.safetensors`));
    expect(commits).toEqual([...shardNames.map((s) => `out/${s}`), "out/model.safetensors.index.json"]);
    expect(Object.keys(index.weight_map)).toEqual([...want.keys()].sort());
    expect(index.metadata.total_size).toBe([...want.values()].reduce((a, t) => a + t.byteLength, 0));

    // Each shard: tensor bytes within the limit unless it holds one tensor; tensors in save order.
    const order: string[] = [];
    for (const s of shardNames) {
      const bytes = io.files.get(`out/${s}`)!;
      const header = await readSafetensorsHeader({ name: s, size: bytes.byteLength, read: async (o, l) => bytes.slice(o, o + l), close: async () => {} });
      // transformers' "format", plus savepoint's checksums (header, then each tensor's CRC-32).
      expect(Object.keys(header.metadata!).sort()).toEqual(["format", "savepoint.crc32", "savepoint.header_crc32"]);
      expect(header.metadata!.format).toBe("pt");
      const crcs = JSON.parse(header.metadata!["savepoint.crc32"]!) as Record<string, string>;
      expect(Object.keys(crcs).sort()).toEqual(header.entries.map((e) => e.name).sort());
      for (const e of header.entries) expect(crcs[e.name], e.name).toBe(crc32(bytes.subarray(e.begin, e.end)).toString(16).padStart(8, "0"));
      const data = bytes.byteLength - header.dataStart;
      if (data > LIMIT) expect(header.entries.map((e) => e.name), s).toEqual(["big.weight"]);
      const inShard = Object.entries(index.weight_map as Record<string, string>).filter(([, f]) => f === s).map(([t]) => t);
      expect(header.entries.map((e) => e.name).sort()).toEqual(inShard.sort());
      order.push(...[...want.keys()].filter((k) => inShard.includes(k)));
    }
    expect(order).toEqual([...want.keys()]);

    const back = await fabric.load("out/model.safetensors.index.json");
    expect(Object.keys(back).sort()).toEqual([...want.keys()].sort());
    for (const [name, t] of want) {
      const got = back[name] as StoredTensor;
      expect(got.dtype, name).toBe(t.dtype);
      expect([...got.shape], name).toEqual([...t.shape]);
      expect(await got.bytes(), name).toEqual(t.raw);
    }
  });

  it("puts everything in one shard under the default 5 GB limit", async () => {
    const io = new MemoryIO();
    await indexFabric(io).save("m.safetensors.index.json", sample());
    expect([...io.files.keys()].sort()).toEqual(["m-00001-of-00001.safetensors", "m.safetensors.index.json"]);
  });

  it("refuses non-tensor values, bad paths and bad limits before writing anything", async () => {
    const io = new MemoryIO();
    const fabric = indexFabric(io, format);
    for (const state of [{ model: sample(), step: 3 }, { model: { w: [HostTensor.fromValues("float32", [1], [1])] } }, { a: "text" }]) {
      const err = await fabric.save("x/model.safetensors.index.json", state).catch((e: unknown) => e as Error);
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect((err as Error).message).toMatch(/\.pt/);
    }
    await expect(format.write!(sample(), { io, path: "x/model.json", chunkBytes: 1 << 20 })).rejects.toThrow(InvalidArgumentError);
    await expect(format.write!({ __metadata__: HostTensor.fromValues("float32", [1], [1]) }, { io, path: "x/model.safetensors.index.json", chunkBytes: 1 << 20 })).rejects.toThrow(InvalidArgumentError);
    await expect(format.write!({ a: { b: HostTensor.fromValues("float32", [1], [1]) }, "a.b": HostTensor.fromValues("float32", [1], [1]) }, { io, path: "x/model.safetensors.index.json", chunkBytes: 1 << 20 })).rejects.toThrow(/twice|flatten/);
    expect(io.files.size).toBe(0);
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(() => safetensorsIndexFormatWith({ maxShardSize: bad })).toThrow(InvalidArgumentError);
  });
});

describe("Python reads our shards and index", () => {
  const skip = skipWithoutTorch();
  const dir = mkdtempSync(join(tmpdir(), "savepoint-st-index-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // The safetensors package is not installed: check with json + numpy (torch for bfloat16/float8).
  const CHECK = String.raw`
import json, os, struct, sys, zlib
import numpy as np, torch
folder, index_name = sys.argv[1], sys.argv[2]
def no_dups(pairs):
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), "duplicate keys"
    return dict(pairs)
index = json.load(open(os.path.join(folder, index_name)), object_pairs_hook=no_dups)
assert set(index) == {"metadata", "weight_map"}, index.keys()
wm = index["weight_map"]
assert list(wm) == sorted(wm), "weight_map not sorted"
NP = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}
TORCH = {"BF16": torch.bfloat16, "F8_E4M3": torch.float8_e4m3fn if hasattr(torch, "float8_e4m3fn") else None}
SIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "I16": 2, "F16": 2, "BF16": 2, "I32": 4, "F32": 4, "F64": 8, "I64": 8}
out, total = {}, 0
for shard in sorted(set(wm.values())):
    b = open(os.path.join(folder, shard), "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n].decode("utf-8"), object_pairs_hook=no_dups)
    meta = h.pop("__metadata__")
    crcs = json.loads(meta.pop("savepoint.crc32"))
    assert len(meta.pop("savepoint.header_crc32")) == 8
    assert meta == {"format": "pt"}, meta
    assert sorted(crcs) == sorted(h), shard
    assert sorted(h) == sorted(k for k, v in wm.items() if v == shard), shard
    data = b[8 + n:]
    for k, v in h.items():
        s, e = v["data_offsets"]
        assert e - s == int(np.prod(v["shape"], dtype=np.int64)) * SIZE[v["dtype"]], k
        buf = data[s:e]
        assert crcs[k] == "%08x" % zlib.crc32(buf), (k, crcs[k])
        total += e - s
        if v["dtype"] in NP:
            arr = np.frombuffer(buf, dtype=NP[v["dtype"]]).reshape(v["shape"])
            a = arr.astype(np.float64)
            s64 = float(a[np.isfinite(a)].sum())
        elif TORCH.get(v["dtype"]) is not None and len(buf):
            a = torch.frombuffer(bytearray(buf), dtype=TORCH[v["dtype"]]).to(torch.float64)
            s64 = float(a[torch.isfinite(a)].sum())
        else:
            s64 = None
        out[k] = {"dtype": v["dtype"], "shape": v["shape"], "hex": buf.hex(), "sum": s64}
assert total == index["metadata"]["total_size"], (total, index["metadata"])
print(json.dumps(out))
`;

  it.skipIf(skip)("json + numpy parse the index and every shard to the same values", async () => {
    const fabric = indexFabric(undefined, format);
    await fabric.save(join(dir, "model.safetensors.index.json"), sample());
    expect(readdirSync(dir).filter((f) => f.endsWith(".safetensors")).length).toBeGreaterThan(3);
    const seen = JSON.parse(runPython(CHECK, [dir, "model.safetensors.index.json"])) as Record<string, { dtype: string; shape: number[]; hex: string; sum: number | null }>;
    const want = flatSample();
    expect(Object.keys(seen).sort()).toEqual([...want.keys()].sort());
    const back = await fabric.load(join(dir, "model.safetensors.index.json"));
    for (const [name, t] of want) {
      const s = seen[name]!;
      expect(s.shape, name).toEqual([...t.shape]);
      expect(s.hex, name).toBe(Buffer.from(t.raw).toString("hex"));
      if (s.sum !== null) {
        const values = (await (back[name] as StoredTensor).data()) as ArrayLike<number | bigint>;
        let sum = 0;
        for (let i = 0; i < values.length; i++) if (Number.isFinite(Number(values[i]!))) sum += Number(values[i]!);
        expect(Math.abs(sum - s.sum) <= 1e-9 * Math.max(1, Math.abs(s.sum)), `${name}: ${sum} vs ${s.sum}`).toBe(true);
      }
    }
    expect(readFileSync(join(dir, "model.safetensors.index.json"), "utf8")).toMatch(/^\{\n {2}"metadata": \{\n {4}"total_size": \d+\n {2}\},\n {2}"weight_map": \{\n/);
  });
});
