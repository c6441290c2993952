/**
 * Hostile files through the whole load path (Fabric → format → NodeFileIO on real files). The
 * unit-level cases live beside each reader: test/pickle/hostile.test.ts (memo and stack bombs,
 * deep nesting, huge lengths), test/zip/hostile.test.ts (count bombs, local/central name mismatch,
 * overlaps), test/safetensors/hostile.test.ts (terabyte headers, overlapping and reversed
 * offsets), test/tfjs-manifest and test/safetensors-index (shard names with `..`). This file adds
 * what only shows end to end: the torch-zip path, the tfjs manifest and safetensors metadata,
 * and shard paths that leave the folder through symbolic links.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CorruptCheckpointError,
  Fabric,
  HostTensor,
  NodeFileIO,
  SavepointError,
  UnsupportedFormatError,
  isStoredTensor,
  type ByteSource,
  type StoredTensor,
} from "../../src/index.js";
import { writeArchive } from "../zip/build.js";
import { FIXTURES } from "../helpers/fixtures.js";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "savepoint-hostile-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** NodeFileIO that counts the bytes it reads and the largest single read. */
class CountingIO extends NodeFileIO {
  bytes = 0;
  largest = 0;
  override async openRead(path: string): Promise<ByteSource> {
    const src = await super.openRead(path);
    const io = this;
    return {
      name: src.name,
      size: src.size,
      async read(offset, length, into) {
        io.bytes += length;
        io.largest = Math.max(io.largest, length);
        return src.read(offset, length, into);
      },
      close: () => src.close(),
    };
  }
}

/**
 * Loads `path` and touches every tensor; expects a typed refusal within a second, without reading
 * more than the file holds and without growing ArrayBuffer memory (measured before any GC).
 */
async function expectRefusal(path: string, pattern: RegExp, types: (new (...a: never[]) => Error)[] = [CorruptCheckpointError, UnsupportedFormatError]): Promise<Error> {
  const io = new CountingIO();
  const before = process.memoryUsage().arrayBuffers;
  const t0 = performance.now();
  const err = await (async () => {
    const tree = await new Fabric({ io }).load(path);
    for (const t of tensorsOf(tree)) await t.data();
  })().then(
    () => new Error("expected the load to be refused"),
    (e: unknown) => e as Error,
  );
  const ms = performance.now() - t0;
  const grown = process.memoryUsage().arrayBuffers - before;
  expect(types.some((T) => err instanceof T), `${path}: ${err.constructor.name}: ${err.message}`).toBe(true);
  expect(err.message).toMatch(/^\[savepoint\] /);
  expect(err.message).toMatch(pattern);
  expect(ms, "refused within a second").toBeLessThan(1000);
  expect(grown, "no large allocation").toBeLessThan(16 << 20);
  return err;
}

function tensorsOf(tree: unknown, out: StoredTensor[] = [], depth = 0): StoredTensor[] {
  if (depth > 50) return out;
  if (isStoredTensor(tree)) out.push(tree);
  else if (Array.isArray(tree)) for (const v of tree) tensorsOf(v, out, depth + 1);
  else if (tree && typeof tree === "object") for (const v of Object.values(tree)) tensorsOf(v, out, depth + 1);
  return out;
}

const bin = (s: string) => new Uint8Array(Buffer.from(s, "latin1"));
const u32 = (n: number) => String.fromCharCode(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
/** Pickle LONG1 of a non-negative integer below 2^47. */
function long1(n: number): string {
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.push(v % 256);
  if (bytes.length === 0 || bytes[bytes.length - 1]! >= 0x80) bytes.push(0);
  return `\x8a${String.fromCharCode(bytes.length, ...bytes)}`;
}
const str = (s: string) => `X${u32(s.length)}${s}`;

/** A torch checkpoint {"w": tensor} whose pickle claims `numel` elements of a storage and a tensor of `size`. */
function claimingTorchFile(storageNumel: number, size: number, recordBytes: number): Promise<Uint8Array> {
  const pkl =
    "\x80\x02}" +
    str("w") +
    "ctorch._utils\n_rebuild_tensor_v2\n(" +
    "(" + str("storage") + "ctorch\nFloatStorage\n" + str("0") + str("cpu") + long1(storageNumel) + "tQ" +
    "K\x00" + long1(size) + "\x85" + "K\x01\x85" + "\x89" + "ccollections\nOrderedDict\n)R" +
    "tRs.";
  return writeArchive([
    ["archive/data.pkl", bin(pkl)],
    ["archive/byteorder", bin("little")],
    ["archive/data/0", new Uint8Array(recordBytes)],
    ["archive/version", bin("3\n")],
  ]);
}

/** A torch checkpoint whose data.pkl is `pkl` (no tensors). */
const torchFileWithPickle = (pkl: string) => writeArchive([["archive/data.pkl", bin(pkl)], ["archive/version", bin("3\n")]]);

function safetensorsFile(header: string, data = new Uint8Array(0)): Uint8Array {
  const json = Buffer.from(header, "utf8");
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

const put = (name: string, bytes: Uint8Array | string) => {
  const p = join(dir, name);
  mkdirSync(join(p, ".."), { recursive: true });
  writeFileSync(p, bytes);
  return p;
};

describe("a header claiming a terabyte in a 1 KiB file is refused before anything is allocated", () => {
  const TB = 2 ** 38; // float32 elements: 1 TiB

  it("torch zip: a storage claiming a terabyte", async () => {
    const p = put("tb-storage.ckpt", await claimingTorchFile(TB, TB, 16));
    expect(readFileSync(p).length).toBeLessThan(1024);
    await expectRefusal(p, /tb-storage\.ckpt.*data\/0 claims 274877906944 elements/);
  });

  it("torch zip: a small storage under a tensor that claims a terabyte (and 2 GiB, which would allocate lazily)", async () => {
    for (const size of [TB, 2 ** 29]) {
      const p = put(`tb-view-${size}.ckpt`, await claimingTorchFile(4, size, 16));
      await expectRefusal(p, /tb-view-\d+\.ckpt/);
    }
  });

  it("zip: an entry whose central size claims 4 GiB", async () => {
    const bytes = await claimingTorchFile(4, 4, 16);
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    // The central header of archive/data/0 (the last mention of the name): both sizes 0xFFFFFFFE.
    const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const central = b.lastIndexOf(Buffer.from("PK\x01\x02", "latin1"), b.lastIndexOf(Buffer.from("archive/data/0")));
    v.setUint32(central + 20, 0xfffffffe, true);
    v.setUint32(central + 24, 0xfffffffe, true);
    await expectRefusal(put("tb-zip.ckpt", bytes), /tb-zip\.ckpt.*archive\/data\/0/);
  });

  it("safetensors: a tensor of a terabyte (also covered at the header level in test/safetensors)", async () => {
    const p = put("tb.safetensors", safetensorsFile(`{"w":{"dtype":"F32","shape":[${TB}],"data_offsets":[0,${TB * 4}]}}`, new Uint8Array(512)));
    await expectRefusal(p, /tb\.safetensors.*"w"/);
  });

  it("tfjs manifest: a weight of a terabyte over a 1 KiB shard", async () => {
    put("tb-tfjs/weights.bin", new Uint8Array(1024));
    const p = put("tb-tfjs/model.json", JSON.stringify({ format: "graph-model", weightsManifest: [{ paths: ["weights.bin"], weights: [{ name: "w", shape: [TB], dtype: "float32" }] }] }));
    await expectRefusal(p, /model\.json.*weightsManifest\[0\].*need 1099511627776 bytes/);
  });
});

describe("pickle bombs inside a torch checkpoint", () => {
  it("a memo bomb: puts at 10,000 huge indices cost one map entry each", async () => {
    let s = "\x80\x02}" + str("a") + "N";
    for (let i = 0; i < 10_000; i++) s += `r${u32(0xffffffff - i)}`;
    s += "s.";
    const t0 = performance.now();
    const ckpt = await new Fabric().load(put("memo-bomb.ckpt", await torchFileWithPickle(s)));
    expect(ckpt).toEqual({ a: null });
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it("a stack bomb: 200,000 marks, and a million pushes without STOP", async () => {
    await expectRefusal(put("marks.ckpt", await torchFileWithPickle("\x80\x02" + "(".repeat(200_000) + ".")), /marks\.ckpt:archive\/data\.pkl.*deeper than/);
    await expectRefusal(put("pushes.ckpt", await torchFileWithPickle("\x80\x02" + "N".repeat(1_000_000))), /pushes\.ckpt:archive\/data\.pkl.*truncated|ends at byte/);
  });

  it("a reference bomb (2^60 leaves through shared lists) loads at once and stays shared", async () => {
    let s = "\x80\x02]r" + u32(0) + "0";
    for (let i = 1; i <= 60; i++) s += `(j${u32(i - 1)}j${u32(i - 1)}lr${u32(i)}0`;
    s += "}" + str("bomb") + `j${u32(60)}s.`;
    const t0 = performance.now();
    const ckpt = await new Fabric().load(put("laughs.ckpt", await torchFileWithPickle(s)));
    expect(performance.now() - t0).toBeLessThan(1000);
    const bomb = ckpt.bomb as unknown[];
    expect(bomb[0]).toBe(bomb[1]);
    // Loaded into a state, it is a plain value and replaces the caller's.
    const state = { bomb: 0 as unknown };
    await new Fabric().load(join(dir, "laughs.ckpt"), state);
    expect(Array.isArray(state.bomb)).toBe(true);
  });
});

describe("100,000-deep nesting is an error, not a stack overflow", () => {
  const deep = (open: string, close: string, inner = "") => open.repeat(100_000) + inner + close.repeat(100_000);

  it("torch zip: nested lists in data.pkl", async () => {
    await expectRefusal(put("deep.ckpt", await torchFileWithPickle("\x80\x02" + "](".repeat(100_000) + "e".repeat(100_000) + ".")), /deep\.ckpt.*deeper than/);
  });

  it("safetensors: a nested header and a nested savepoint tree in __metadata__", async () => {
    await expectRefusal(put("deep-header.safetensors", safetensorsFile(`{"w":{"dtype":"F32","shape":${deep("[", "]")},"data_offsets":[0,0]}}`)), /deep-header\.safetensors.*nesting deeper/);
    const tree = JSON.stringify(deep("[", "]"));
    await expectRefusal(put("deep-tree.safetensors", safetensorsFile(`{"__metadata__":{"savepoint.tree":${tree}}}`)), /deep-tree\.safetensors|deeper than/);
  });

  it("tfjs manifest: nested weightsManifest is refused; a nested topology is ignored", async () => {
    put("deep-tfjs/weights.bin", new Uint8Array(4));
    const p = put("deep-tfjs/model.json", `{"format":"graph-model","weightsManifest":${deep("[", "]")}}`);
    await expectRefusal(p, /model\.json.*weightsManifest\[0\]/);
    put("deep-topology/weights.bin", new Uint8Array(4));
    const q = put("deep-topology/model.json", `{"modelTopology":${deep('{"a":', "}", "1")},"weightsManifest":[{"paths":["weights.bin"],"weights":[{"name":"w","shape":[1],"dtype":"float32"}]}]}`);
    expect(Object.keys(await new Fabric().load(q))).toEqual(["w"]);
  });

  it("safetensors index: nested metadata", async () => {
    const p = put("deep-index/model.safetensors.index.json", `{"metadata":${deep('{"a":', "}", "1")},"weight_map":{}}`);
    const err = await new Fabric().load(p).then(() => undefined, (e: unknown) => e as Error);
    // Either refused or an empty model: never a RangeError.
    if (err) expect(err).toBeInstanceOf(SavepointError);
  });

  it("saving a 100,000-deep state is refused too, and writes nothing", async () => {
    let v: unknown = 1;
    for (let i = 0; i < 100_000; i++) v = [v];
    const err = await new Fabric().save(join(dir, "deep-save.ckpt"), { v }).then(() => undefined, (e: unknown) => e as Error);
    expect(err).toBeInstanceOf(SavepointError);
    expect(err!.message).toMatch(/deeper than/);
    expect(() => readFileSync(join(dir, "deep-save.ckpt"))).toThrow();
  });
});

describe("safetensors offsets that overlap or run backwards (header-level cases: test/safetensors/hostile)", () => {
  const data = new Uint8Array(32);
  const cases: Record<string, string> = {
    aliasing: `{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`,
    overlapping: `{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]},"c":{"dtype":"F32","shape":[2],"data_offsets":[24,32]}}`,
    backwards: `{"a":{"dtype":"F32","shape":[4],"data_offsets":[16,0]},"b":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}}`,
  };
  for (const [name, header] of Object.entries(cases)) {
    it(name, async () => {
      await expectRefusal(put(`${name}.safetensors`, safetensorsFile(header, data)), new RegExp(`${name}\\.safetensors`));
    });
  }
  it("keys listed out of offset order are fine (the spec orders by offset) and read the right bytes", async () => {
    const bytes = new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]).buffer);
    const p = put("reordered.safetensors", safetensorsFile(`{"b":{"dtype":"F32","shape":[4],"data_offsets":[16,32]},"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, bytes));
    const ckpt = await new Fabric().load(p);
    expect(Array.from((await (ckpt.b as StoredTensor).data()) as Float32Array)).toEqual([5, 6, 7, 8]);
  });
});

describe("zip entries whose local and central headers disagree (more in test/zip/hostile)", () => {
  let good: Uint8Array;
  beforeAll(async () => {
    const p = join(dir, "disagree-base.ckpt");
    await new Fabric().save(p, { a: HostTensor.fromValues("float32", [4], [1, 2, 3, 4]), b: HostTensor.fromValues("float32", [4], [5, 6, 7, 8]) });
    good = new Uint8Array(readFileSync(p)); // a copy: Buffer.slice would share memory
  });
  const centralOf = (bytes: Uint8Array, name: string) => {
    const b = Buffer.from(bytes);
    const at = b.lastIndexOf(Buffer.from(name));
    return b.lastIndexOf(Buffer.from("PK\x01\x02", "latin1"), at);
  };

  it("the central directory sends one record's name to another record's local header", async () => {
    const bytes = good.slice();
    const v = new DataView(bytes.buffer);
    const c0 = centralOf(bytes, "archive/data/0");
    const c1 = centralOf(bytes, "archive/data/1");
    const o0 = v.getUint32(c0 + 42, true);
    v.setUint32(c0 + 42, v.getUint32(c1 + 42, true), true);
    v.setUint32(c1 + 42, o0, true);
    await expectRefusal(put("swapped.ckpt", bytes), /swapped\.ckpt.*archive\/data\/[01].*local and central headers disagree/);
  });

  it("the local header claims compression the central directory does not", async () => {
    const bytes = good.slice();
    const v = new DataView(bytes.buffer);
    const local = v.getUint32(centralOf(bytes, "archive/data/1") + 42, true);
    v.setUint16(local + 8, 8, true);
    await expectRefusal(put("method.ckpt", bytes), /method\.ckpt.*archive\/data\/1.*compression method 8/);
  });

  it("a longer local extra field shifts the data: the CRC names the record", async () => {
    const bytes = good.slice();
    const v = new DataView(bytes.buffer);
    const local = v.getUint32(centralOf(bytes, "archive/data/1") + 42, true);
    v.setUint16(local + 28, v.getUint16(local + 28, true) + 4, true);
    await expectRefusal(put("shifted.ckpt", bytes), /shifted\.ckpt.*archive\/data\/1/);
  });
});

describe("shard paths that escape the checkpoint folder through symbolic links", () => {
  const secret = () => put("secret.bin", new Uint8Array(new Float32Array([42, 42]).buffer));
  const manifest = (paths: string[]) => JSON.stringify({ format: "graph-model", weightsManifest: [{ paths, weights: [{ name: "w", shape: [2], dtype: "float32" }] }] });

  it("tfjs: a shard that is a link to a file outside the folder (as the folder and as model.json)", async () => {
    const s = secret();
    mkdirSync(join(dir, "link-tfjs"), { recursive: true });
    put("link-tfjs/model.json", manifest(["weights.bin"]));
    symlinkSync(s, join(dir, "link-tfjs/weights.bin"));
    await expectRefusal(join(dir, "link-tfjs"), /weights\.bin.*outside the checkpoint folder/, [CorruptCheckpointError]);
    await expectRefusal(join(dir, "link-tfjs/model.json"), /weights\.bin.*outside the checkpoint folder/, [CorruptCheckpointError]);
  });

  it("tfjs: a linked subfolder leading out (sub -> ..)", async () => {
    secret();
    mkdirSync(join(dir, "link-sub"), { recursive: true });
    put("link-sub/model.json", manifest(["sub/secret.bin"]));
    symlinkSync("..", join(dir, "link-sub/sub"));
    await expectRefusal(join(dir, "link-sub/model.json"), /sub\/secret\.bin.*outside the checkpoint folder/, [CorruptCheckpointError]);
  });

  it("safetensors index: a shard linked outside", async () => {
    const outside = put("outside.safetensors", safetensorsFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, new Uint8Array(new Float32Array([42, 42]).buffer)));
    mkdirSync(join(dir, "link-index"), { recursive: true });
    put("link-index/model.safetensors.index.json", JSON.stringify({ metadata: { total_size: 8 }, weight_map: { w: "model-00001-of-00001.safetensors" } }));
    symlinkSync(outside, join(dir, "link-index/model-00001-of-00001.safetensors"));
    await expectRefusal(join(dir, "link-index/model.safetensors.index.json"), /model-00001-of-00001\.safetensors.*outside the checkpoint folder/, [CorruptCheckpointError]);
  });

  it("links that stay inside the folder load, and so does a Hugging Face cache snapshot (every file a link into blobs/)", async () => {
    mkdirSync(join(dir, "link-inside/real"), { recursive: true });
    put("link-inside/real/weights.bin", new Uint8Array(new Float32Array([1, 2]).buffer));
    put("link-inside/model.json", manifest(["weights.bin"]));
    symlinkSync("real/weights.bin", join(dir, "link-inside/weights.bin"));
    const a = await new Fabric().load(join(dir, "link-inside/model.json"));
    expect(Array.from((await (a.w as StoredTensor).data()) as Float32Array)).toEqual([1, 2]);

    // models--org--name/{blobs/<hash>, snapshots/<rev>/<file> -> ../../blobs/<hash>}
    const repo = join(dir, "models--org--tiny");
    mkdirSync(join(repo, "blobs"), { recursive: true });
    mkdirSync(join(repo, "snapshots/abc123"), { recursive: true });
    writeFileSync(join(repo, "blobs/1111"), JSON.stringify({ metadata: { total_size: 8 }, weight_map: { w: "model-00001-of-00001.safetensors" } }));
    writeFileSync(join(repo, "blobs/2222"), safetensorsFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, new Uint8Array(new Float32Array([3, 4]).buffer)));
    symlinkSync("../../blobs/1111", join(repo, "snapshots/abc123/model.safetensors.index.json"));
    symlinkSync("../../blobs/2222", join(repo, "snapshots/abc123/model-00001-of-00001.safetensors"));
    const b = await new Fabric().load(join(repo, "snapshots/abc123/model.safetensors.index.json"));
    expect(Array.from((await (b.w as StoredTensor).data()) as Float32Array)).toEqual([3, 4]);
  });

  it("DCP: a .distcp shard linked outside the checkpoint folder", async () => {
    const src = join(FIXTURES, "lightning-2.6/fabric-fsdp2-sharded.ckpt");
    const copy = join(dir, "dcp-link.ckpt");
    cpSync(src, copy, { recursive: true });
    const outside = join(dir, "stolen.distcp");
    cpSync(join(copy, "__1_0.distcp"), outside);
    rmSync(join(copy, "__1_0.distcp"));
    symlinkSync(outside, join(copy, "__1_0.distcp"));
    await expectRefusal(copy, /__1_0\.distcp.*outside the checkpoint folder/, [CorruptCheckpointError]);
  });

  it("a checkpoint file that is itself a link (last.ckpt -> step-100.ckpt) loads", async () => {
    const p = join(dir, "step-100.ckpt");
    await new Fabric().save(p, { step: 100 });
    symlinkSync("step-100.ckpt", join(dir, "last.ckpt"));
    expect(await new Fabric().load(join(dir, "last.ckpt"))).toEqual({ step: 100 });
  });
});
