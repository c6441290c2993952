import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  CheckpointNotFoundError,
  CorruptCheckpointError,
  Fabric,
  HostTensor,
  isStoredTensor,
  LazyTensor,
  MemoryIO,
  UnsafeCheckpointError,
  type ByteSource,
  type CheckpointIO,
  type StoredTensor,
} from "../../src/index.js";
import { readDcpMetadata } from "../../src/formats/dcp/read-dcp-metadata.js";
import { dcpFormat } from "../../src/formats/dcp/dcp-format.js";
import { closeTo, FIXTURES, summarize } from "../helpers/fixtures.js";
import { runPython, skipWithoutTorch } from "../helpers/python.js";
import { boxBytes, buildDcp } from "./dcp-builder.js";

const LIGHTNING = `${FIXTURES}/lightning-2.6/fabric-fsdp2-sharded.ckpt`;
const FULL = `${FIXTURES}/lightning-2.6/fabric-fsdp2-full.ckpt`;
const MEGATRON = ["megatron-dcp-1rank", "megatron-dcp-tp2"];
const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");

/** Copies a fixture folder into memory, logging every read as [file, offset, length]. */
function memoryCopy(folder: string, name: string): { io: CheckpointIO; mem: MemoryIO; reads: [string, number, number][] } {
  const mem = new MemoryIO();
  for (const f of readdirSync(folder)) mem.files.set(`${name}/${f}`, new Uint8Array(readFileSync(`${folder}/${f}`)));
  const reads: [string, number, number][] = [];
  const io: CheckpointIO = {
    name: "logged",
    stat: (p) => mem.stat(p),
    list: (p) => mem.list(p),
    openWrite: (p) => mem.openWrite(p),
    async openRead(p) {
      const s = await mem.openRead(p);
      const logged: ByteSource = { name: s.name, size: s.size, close: () => s.close(), read: (o, l, into) => (reads.push([p, o, l]), s.read(o, l, into)) };
      return logged;
    },
  };
  return { io, mem, reads };
}

/** Deep comparison of two loaded trees, tensors bit for bit. */
async function expectSameTree(a: unknown, b: unknown, path = ""): Promise<void> {
  if (isStoredTensor(a) || isStoredTensor(b)) {
    expect(isStoredTensor(a) && isStoredTensor(b), path).toBe(true);
    const [x, y] = [a as StoredTensor, b as StoredTensor];
    expect([x.dtype, [...x.shape], hex(await x.bytes())], path).toEqual([y.dtype, [...y.shape], hex(await y.bytes())]);
    return;
  }
  if (Array.isArray(a)) {
    expect(Array.isArray(b) && b.length === a.length, path).toBe(true);
    for (let i = 0; i < a.length; i++) await expectSameTree(a[i], (b as unknown[])[i], `${path}[${i}]`);
    return;
  }
  if (typeof a === "object" && a !== null && !(a instanceof Uint8Array)) {
    expect(Object.keys(a).sort(), path).toEqual(Object.keys(b as object).sort());
    for (const k of Object.keys(a)) await expectSameTree((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`);
    return;
  }
  expect(a, path).toEqual(b);
}

describe("DCP directories: Lightning's FSDP2 sharded checkpoint", () => {
  it("is detected by its .metadata entry and is read only", () => {
    expect(dcpFormat.detect({ path: "c", info: { kind: "directory", size: 0 }, entries: [".metadata", "__0_0.distcp"] })).toBe(true);
    expect(dcpFormat.detect({ path: "c", info: { kind: "directory", size: 0 }, entries: ["__0_0.distcp"] })).toBe(false);
    expect(dcpFormat.detect({ path: "c", info: { kind: "file", size: 9 }, head: new Uint8Array(9) })).toBe(false);
    expect(dcpFormat.write).toBeUndefined();
  });

  it("loads into the state's nesting (planner_data) with meta.pt merged at the top, and equals the full checkpoint bit for bit", async () => {
    const sharded = (await new Fabric().load(LIGHTNING)) as Record<string, any>;
    expect(Object.keys(sharded).sort()).toEqual(["config", "epoch", "model", "optimizer", "scheduler", "step"]);
    expect(Object.keys(sharded.model)).toEqual(["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "out.weight", "out.bias"]);
    expect(sharded.model["fc1.weight"]).toBeInstanceOf(LazyTensor);
    expect(sharded.optimizer.param_groups[0].lr).toBe(0.0025);
    expect(sharded.optimizer.param_groups[0].params).toEqual(["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "out.weight", "out.bias"]);
    expect([sharded.step, sharded.epoch]).toEqual([400, 3]);
    await expectSameTree(sharded, await new Fabric().load(FULL));
  });

  it("matches the truth file the model was saved from", async () => {
    const truth = JSON.parse(readFileSync(`${FIXTURES}/lightning-2.6/fabric-fsdp2-sharded.truth.json`, "utf8")).model as Record<string, { dtype: string; shape: number[]; sum: number }>;
    const model = ((await new Fabric().load(LIGHTNING)) as Record<string, Record<string, StoredTensor>>).model!;
    for (const [k, t] of Object.entries(truth)) {
      const s = await summarize(model[k]!);
      expect([s.dtype, s.shape, closeTo(s.sum, t.sum, 1e-6)], k).toEqual([t.dtype, t.shape, true]);
    }
  });

  it("loads under safe: \"strict\" (the DCP classes are allow-listed)", async () => {
    for (const dir of [LIGHTNING, ...MEGATRON.map((m) => `${FIXTURES}/${m}`)]) await expect(new Fabric({ safe: "strict" }).load(dir)).resolves.toBeTypeOf("object");
  });

  it("reads no tensor bytes at load, and a byte range reads only the chunks overlapping it", async () => {
    const { io, reads } = memoryCopy(`${FIXTURES}/megatron-dcp-tp2`, "ckpt");
    const tree = (await new Fabric({ io }).load("ckpt")) as Record<string, Record<string, StoredTensor>>;
    const md = readDcpMetadata(new Uint8Array(readFileSync(`${FIXTURES}/megatron-dcp-tp2/.metadata`)), { where: ".metadata", folder: "ckpt", safe: "strict" });
    const ranges = (key: string) => {
      const item = md.items.get(key)!;
      if (item.kind !== "tensor") throw new Error(key);
      return item.chunks.map((c) => ({ at: c.offsets.join(), file: `ckpt/${c.storage.file}`, from: c.storage.offset, to: c.storage.offset + c.storage.length }));
    };
    const touched = (key: string) => [...new Set(reads.filter(([f]) => f.endsWith(".distcp")).map(([f, o]) => ranges(key).find((r) => r.file === f && o >= r.from && o < r.to)?.at ?? `other ${f}@${o}`))].sort();
    // Only bytes items (Megatron's extra state) are read at load.
    const tensorReads = reads.filter(([f, o]) => f.endsWith(".distcp") && [...md.items.values()].some((i) => i.kind === "tensor" && i.chunks.some((c) => `ckpt/${c.storage.file}` === f && o >= c.storage.offset && o < c.storage.offset + c.storage.length)));
    expect(tensorReads).toEqual([]);

    // word_embeddings (100, 12) in chunks at rows 0 and 50: rows 0-49 come from the first only.
    const emb = tree.embedding!["word_embeddings.weight"]!;
    reads.length = 0;
    const firstHalf = await emb.readRange(0, 50 * 12 * 4);
    expect(touched("embedding.word_embeddings.weight")).toEqual(["0,0"]);
    reads.length = 0;
    const unaligned = await emb.readRange(50 * 12 * 4 - 6, 12);
    expect(touched("embedding.word_embeddings.weight")).toEqual(["0,0", "50,0"]);
    const all = await emb.bytes();
    expect(hex(firstHalf)).toBe(hex(all.subarray(0, 50 * 12 * 4)));
    expect(hex(unaligned)).toBe(hex(all.subarray(50 * 12 * 4 - 6, 50 * 12 * 4 + 6)));

    // linear_proj.weight (2, 12, 12) split on dims 0 and 2: the first 12 elements (row 0 of
    // layer 0) come from the chunks at (0,0,0) and (0,0,6) only.
    const proj = tree.decoder!["layers.self_attention.linear_proj.weight"]!;
    reads.length = 0;
    await proj.readRange(0, 12 * 4);
    expect(touched("decoder.layers.self_attention.linear_proj.weight")).toEqual(["0,0,0", "0,0,6"]);
  });
});

describe("DCP directories: Megatron-Core", () => {
  for (const name of MEGATRON) {
    it(`${name}: every chunk of every tensor sits at its offsets (checked against the chunk's own torch zip)`, async () => {
      const dir = `${FIXTURES}/${name}`;
      const md = readDcpMetadata(new Uint8Array(readFileSync(`${dir}/.metadata`)), { where: ".metadata", folder: dir, safe: "strict" });
      const tree = (await new Fabric().load(dir)) as Record<string, any>;
      const mem = new MemoryIO();
      let multi = 0;
      for (const item of md.items.values()) {
        if (item.kind !== "tensor") continue;
        // tp2 has no planner_data: the first dot splits the key.
        const dot = item.key.indexOf(".");
        const t: StoredTensor = name.endsWith("1rank") ? tree[item.key] : tree[item.key.slice(0, dot)][item.key.slice(dot + 1)];
        expect([t.dtype, [...t.shape]], item.key).toEqual([item.dtype, [...item.size]]);
        const full = new HostTensor(t.dtype, t.shape, await t.bytes());
        if (item.chunks.length > 1) multi++;
        for (const c of item.chunks) {
          const file = readFileSync(`${dir}/${c.storage.file}`).subarray(c.storage.offset, c.storage.offset + c.storage.length);
          mem.files.set("chunk.pt", new Uint8Array(file));
          const chunk = (await new Fabric({ io: mem }).load("chunk.pt")) as unknown as StoredTensor;
          expect([...chunk.shape], item.key).toEqual([...c.sizes]);
          expect(hex(boxBytes(full, c.offsets, c.sizes)), `${item.key} @ ${c.offsets}`).toBe(hex(await chunk.bytes()));
        }
      }
      expect(multi).toBeGreaterThan(5);
    });
  }

  it("megatron-dcp-1rank keeps its flat keys (planner_data maps each key to itself); bytes items decode", async () => {
    const tree = (await new Fabric().load(`${FIXTURES}/megatron-dcp-1rank`)) as Record<string, unknown>;
    expect(tree["embedding.word_embeddings.weight"]).toBeInstanceOf(LazyTensor);
    expect(tree["decoder.layers.self_attention.linear_proj._extra_state/shard_0_2"]).toEqual([null]);
  });
});

/** Every chunk read by torch 1.13 itself, as {key: [[offsets, hex]]}. */
const TORCH_CHUNKS = `
import io, json, pickle, sys, torch
class Stub:
    def __init__(self, *a, **k): self.args = a
    def __setstate__(self, s): self.state = s
class U(pickle.Unpickler):
    def find_class(self, m, n):
        if m == 'torch' and n == 'Size': return tuple
        if m == 'torch': return getattr(torch, n)
        return type(n, (Stub,), {})
d = sys.argv[1]
md = U(open(d + '/.metadata', 'rb')).load().state
out = {}
for idx, info in md['storage_data'].items():
    i, s = idx.state, info.state
    if i.get('offset') is None: continue
    raw = open(d + '/' + s['relative_path'], 'rb').read()[s['offset']:s['offset'] + s['length']]
    t = torch.load(io.BytesIO(raw)).contiguous()
    out.setdefault(i['fqn'], []).append([list(i['offset']), list(t.shape), t.numpy().tobytes().hex()])
print(json.dumps(out))
`;

describe.skipIf(skipWithoutTorch())("DCP chunks against torch 1.13", () => {
  for (const name of [...MEGATRON, "lightning-2.6/fabric-fsdp2-sharded.ckpt"]) {
    it(`${name}: each chunk torch reads equals the box of our reassembled tensor`, async () => {
      const dir = `${FIXTURES}/${name}`;
      const chunks = JSON.parse(runPython(TORCH_CHUNKS, [dir])) as Record<string, [number[], number[], string][]>;
      const flatTree = (await new Fabric().load(dir)) as Record<string, any>;
      const md = readDcpMetadata(new Uint8Array(readFileSync(`${dir}/.metadata`)), { where: ".metadata", folder: dir, safe: "strict" });
      for (const [key, list] of Object.entries(chunks)) {
        const path = md.plannerData?.get(key) ?? [key.slice(0, key.indexOf(".")), key.slice(key.indexOf(".") + 1)];
        const t = path.reduce((v: any, k) => v[k], flatTree) as StoredTensor;
        const full = new HostTensor(t.dtype, t.shape, await t.bytes());
        for (const [offsets, sizes, bytes] of list) expect(hex(boxBytes(full, offsets, sizes)), `${key} @ ${offsets}`).toBe(bytes);
      }
    });
  }
});

describe("DCP directories built here: layouts and hostile metadata", () => {
  const weight = HostTensor.fromValues("float32", [4, 6], Array.from({ length: 24 }, (_, i) => i * 0.5 - 3));
  const bias = HostTensor.fromValues("int64", [6], [1, -2, 3, -4, 5, -6]);
  const tensors = {
    "model.fc.weight": { tensor: weight, chunks: [{ offsets: [0, 0], sizes: [2, 6] }, { offsets: [2, 0], sizes: [2, 4], file: "__1_0.distcp" }, { offsets: [2, 4], sizes: [2, 2], file: "__1_0.distcp" }] },
    "model.fc.bias": { tensor: bias, chunks: [{ offsets: [3], sizes: [3] }, { offsets: [0], sizes: [3] }] },
    "optimizer.state.fc.weight.step": { tensor: HostTensor.fromValues("float32", [], [7]), chunks: [{ offsets: [], sizes: [] }] },
  };
  const plannerData = { "model.fc.weight": ["model", "fc.weight"], "model.fc.bias": ["model", "fc.bias"], "optimizer.state.fc.weight.step": ["optimizer", "state", "fc.weight", "step"], "optimizer.param_groups.0.lr": ["optimizer", "param_groups", 0, "lr"] };

  async function load(spec: Partial<Parameters<typeof buildDcp>[2]>, options: { safe?: "strict" } = {}) {
    const io = new MemoryIO();
    await buildDcp(io, "ckpt", { tensors, bytes: { "optimizer.param_groups.0.lr": 0.5 }, plannerData, ...spec });
    return (await new Fabric({ io, ...options }).load("ckpt")) as Record<string, any>;
  }

  for (const raw of [false, true]) {
    it(`reassembles chunks split on any dimension, 0-d tensors and bytes items (${raw ? "raw" : "torch zip"} chunks)`, async () => {
      const tree = await load({ raw, meta: { step: 3 } }, { safe: "strict" });
      expect(hex(await tree.model["fc.weight"].bytes())).toBe(hex(weight.raw));
      expect(hex(await tree.model["fc.bias"].bytes())).toBe(hex(bias.raw));
      expect([...(await tree.optimizer.state["fc.weight"].step.data())]).toEqual([7]);
      expect(tree.optimizer.param_groups).toEqual([{ lr: 0.5 }]);
      expect(tree.step).toBe(3);
      // Every sub-range, aligned or not, equals the same bytes of the whole.
      const w = tree.model["fc.weight"] as StoredTensor;
      for (let off = 0; off < w.byteLength; off += 5) for (const len of [1, 4, 7, 24, w.byteLength - off]) {
        if (off + len > w.byteLength) continue;
        expect(hex(await w.readRange(off, len)), `${off}+${len}`).toBe(hex(weight.raw.subarray(off, off + len)));
      }
    });
  }

  it("without planner_data, keys split at the first dot", async () => {
    const tree = await load({ plannerData: undefined });
    expect(Object.keys(tree).sort()).toEqual(["model", "optimizer"]);
    expect(Object.keys(tree.model).sort()).toEqual(["fc.bias", "fc.weight"]);
    expect(tree.optimizer["param_groups.0.lr"]).toBe(0.5);
  });

  it("bytes items that are not torch.save blobs stay bytes", async () => {
    const tree = await load({ bytes: { "optimizer.param_groups.0.lr": new Uint8Array([1, 2, 3]) } });
    expect(tree.optimizer.param_groups[0].lr).toEqual(new Uint8Array([1, 2, 3]));
  });

  it("a record file that escapes the folder is refused, naming the key and the file", async () => {
    const hostile = load({ location: (key, loc) => (key === "model.fc.bias" ? { ...loc, file: "../../etc/passwd" } : loc) });
    await expect(hostile).rejects.toThrow(CorruptCheckpointError);
    await expect(load({ location: (key, loc) => (key === "model.fc.bias" ? { ...loc, file: "../../etc/passwd" } : loc) })).rejects.toThrow(/"model\.fc\.bias" names the file "\.\.\/\.\.\/etc\/passwd"/);
    await expect(load({ location: (key, loc) => ({ ...loc, file: "/etc/passwd" }) })).rejects.toThrow(CorruptCheckpointError);
  });

  it("offsets and lengths past the file, missing files and bad chunk layouts are refused", async () => {
    await expect(load({ location: (key, loc) => (key === "model.fc.bias" ? { ...loc, length: loc.length + 10_000 } : loc) })).rejects.toThrow(/"model\.fc\.bias" is stored at bytes .* of __0_0\.distcp/);
    await expect(load({ location: (key, loc) => (key === "model.fc.bias" ? { ...loc, file: "__9_9.distcp" } : loc) })).rejects.toThrow(CheckpointNotFoundError);
    const overlapping = { ...tensors, "model.fc.bias": { tensor: bias, chunks: [{ offsets: [0], sizes: [4] }, { offsets: [2], sizes: [2] }] } };
    await expect(load({ tensors: overlapping })).rejects.toThrow(/overlap/);
    const gap = { ...tensors, "model.fc.bias": { tensor: bias, chunks: [{ offsets: [0], sizes: [3] }] } };
    await expect(load({ tensors: gap })).rejects.toThrow(/hold 3 elements/);
  });

  it("a hostile .metadata naming ../../etc/passwd (patched into the real Lightning file) is refused", async () => {
    const { mem } = memoryCopy(LIGHTNING, "ckpt");
    const md = mem.files.get("ckpt/.metadata")!;
    const from = Buffer.from("\x8c\x0c__0_0.distcp", "latin1");
    const to = Buffer.from("\x8c\x10../../etc/passwd", "latin1");
    const at = Buffer.from(md).indexOf(from);
    expect(at).toBeGreaterThan(0);
    const patched = Buffer.concat([md.subarray(0, at), to, md.subarray(at + from.length)]);
    // The one frame spans the pickle; it grows by the 4 added bytes.
    patched.writeBigUInt64LE(patched.readBigUInt64LE(3) + 4n, 3);
    mem.files.set("ckpt/.metadata", new Uint8Array(patched));
    const err = await new Fabric({ io: mem }).load("ckpt").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptCheckpointError);
    expect((err as Error).message).toMatch(/"model\.fc1\.weight" names the file "\.\.\/\.\.\/etc\/passwd"/);
  });

  it("unknown classes in .metadata are refused in strict mode and are not a DCP model otherwise", async () => {
    const { mem } = memoryCopy(LIGHTNING, "ckpt");
    const md = Buffer.from(mem.files.get("ckpt/.metadata")!);
    const at = md.indexOf(Buffer.from("\x8c\x08Metadata", "latin1"));
    md.write("Xetadata", at + 2, "latin1");
    mem.files.set("ckpt/.metadata", new Uint8Array(md));
    await expect(new Fabric({ io: mem, safe: "strict" }).load("ckpt")).rejects.toThrow(UnsafeCheckpointError);
    await expect(new Fabric({ io: mem }).load("ckpt")).rejects.toThrow(CorruptCheckpointError);
  });
});
