import { describe, expect, it } from "vitest";
import { CheckpointNotFoundError, CorruptCheckpointError, MemoryIO, UnsupportedFormatError, type StoredTensor } from "../../src/index.js";
import { tfjsManifestFormat } from "../../src/formats/tfjs/tfjs-manifest-format.js";
import { MAX_MANIFEST_BYTES } from "../../src/formats/tfjs/manifest.js";
import { putModel, readDirect, tfjsFabric } from "./util.js";
import "@tensorflow/tfjs-backend-cpu";

const f32 = (...v: number[]): Uint8Array => new Uint8Array(new Float32Array(v).buffer);

async function loadError(manifest: unknown, shards: Record<string, Uint8Array> = {}): Promise<Error> {
  const io = new MemoryIO();
  const path = putModel(io, "m", manifest, shards);
  return tfjsFabric(io).load(path).then(
    () => {
      throw new Error("expected the load to fail");
    },
    (e: unknown) => e as Error,
  );
}

describe("hostile TensorFlow.js manifests", () => {
  it("baseline: a valid two-weight manifest loads", async () => {
    const io = new MemoryIO();
    const path = putModel(io, "m", [{ paths: ["w.bin"], weights: [{ name: "a", shape: [2], dtype: "float32" }, { name: "b", shape: [], dtype: "int32" }] }], { "w.bin": new Uint8Array(12) });
    expect(Object.keys(await tfjsFabric(io).load(path))).toEqual(["a", "b"]);
  });

  it("refuses a shard path escaping the model folder", async () => {
    for (const p of ["../../etc/passwd", "/etc/passwd", "a/../../x.bin", "..\\x.bin"]) {
      const err = await loadError([{ paths: [p], weights: [{ name: "a", shape: [1], dtype: "float32" }] }]);
      expect(err, p).toBeInstanceOf(CorruptCheckpointError);
      expect(err.message).toContain("outside the checkpoint folder");
      expect(err.message).toContain("m/model.json");
      expect(err.message).toContain(JSON.stringify(p));
    }
    // Also when the checkpoint is the folder (ctx.open path).
    const io = new MemoryIO();
    putModel(io, "m", [{ paths: ["../secret.bin"], weights: [{ name: "a", shape: [1], dtype: "float32" }] }], {});
    io.files.set("secret.bin", new Uint8Array(4));
    await expect(tfjsFabric(io).load("m")).rejects.toThrow(CorruptCheckpointError);
  });

  it("refuses a group whose byte total disagrees with its shard files, naming the group and files", async () => {
    const err = await loadError([{ paths: ["s1.bin", "s2.bin"], weights: [{ name: "a", shape: [3], dtype: "float32" }] }], { "s1.bin": new Uint8Array(8), "s2.bin": new Uint8Array(8) });
    expect(err).toBeInstanceOf(CorruptCheckpointError);
    expect(err.message).toContain("weightsManifest[0]");
    expect(err.message).toMatch(/need 12 bytes but its shard files hold 16/);
    expect(err.message).toContain("m/s1.bin: 8");
    expect(err.message).toContain("m/s2.bin: 8");
  });

  it("reports a missing shard file as not found, naming the manifest", async () => {
    const err = await loadError([{ paths: ["gone.bin"], weights: [{ name: "a", shape: [1], dtype: "float32" }] }]);
    expect(err).toBeInstanceOf(CheckpointNotFoundError);
    expect(err.message).toContain("m/model.json");
    expect(err.message).toContain("gone.bin");
  });

  it("refuses unknown dtypes with UnsupportedFormatError naming the weight", async () => {
    for (const dtype of ["string", "float64", "toString", "__proto__"]) {
      const err = await loadError([{ paths: ["w.bin"], weights: [{ name: "vocab", shape: [2], dtype }] }], { "w.bin": new Uint8Array(8) });
      expect(err, dtype).toBeInstanceOf(UnsupportedFormatError);
      expect(err.message).toContain('"vocab"');
      expect(err.message).toContain(JSON.stringify(dtype));
    }
  });

  it("refuses negative, fractional, non-numeric and overflowing shapes", async () => {
    for (const shape of [[-1], [1.5], ["2"], [2 ** 53], [2 ** 30, 2 ** 30], null]) {
      const err = await loadError([{ paths: ["w.bin"], weights: [{ name: "k", shape, dtype: "float32" }] }], { "w.bin": new Uint8Array(4) });
      expect(err, JSON.stringify(shape)).toBeInstanceOf(CorruptCheckpointError);
      expect(err.message).toContain('"k"');
    }
  });

  it("refuses malformed manifests and quantization", async () => {
    const bad: unknown[] = [
      '{"weightsManifest": [',
      '{"weightsManifest": [] } trailing',
      JSON.stringify({ weightsManifest: {} }),
      [null],
      [{ paths: "w.bin", weights: [] }],
      [{ paths: [""], weights: [] }],
      [{ paths: ["w.bin"], weights: {} }],
      [{ paths: ["w.bin"], weights: [{ shape: [1], dtype: "float32" }] }],
      [{ paths: ["w.bin"], weights: [{ name: "a", shape: [1], dtype: "float32" }, { name: "a", shape: [1], dtype: "float32" }] }],
      [{ paths: ["w.bin"], weights: [{ name: "a", shape: [4], dtype: "float32", quantization: { dtype: "uint8", min: 0 } }] }],
      [{ paths: ["w.bin"], weights: [{ name: "a", shape: [4], dtype: "float32", quantization: { dtype: "int8", min: 0, scale: 1 } }] }],
      [{ paths: ["w.bin"], weights: [{ name: "a", shape: [4], dtype: "bool", quantization: { dtype: "uint8", min: 0, scale: 1 } }] }],
      [{ paths: ["w.bin"], weights: [{ name: "a", shape: [4], dtype: "int32", quantization: { dtype: "float16" } }] }],
      [{ paths: ["w.bin"], weights: [{ name: "a", shape: [4], dtype: "float32", quantization: { dtype: "uint8", min: 0, scale: 1, original_dtype: "int32" } }] }],
    ];
    for (const m of bad) {
      const err = await loadError(m, { "w.bin": new Uint8Array(16) });
      expect(err, JSON.stringify(m)).toBeInstanceOf(CorruptCheckpointError);
      expect(err.message).toContain("m/model.json");
    }
    // Not JSON at all: no format claims it.
    expect(await loadError("[1,2]")).toBeInstanceOf(UnsupportedFormatError);
    const none = await loadError(JSON.stringify({ modelTopology: {} }));
    expect(none).toBeInstanceOf(UnsupportedFormatError);
    expect(none.message).toContain("weightsManifest");
  });

  it("refuses a model.json over the size limit before reading it", async () => {
    const ctx = {
      io: new MemoryIO(),
      path: "huge/model.json",
      info: { kind: "file" as const, size: MAX_MANIFEST_BYTES + 1 },
      open: async () => ({
        name: "huge/model.json",
        size: MAX_MANIFEST_BYTES + 1,
        read: async () => {
          throw new Error("must not read");
        },
        close: async () => {},
      }),
      safe: "placeholder" as const,
      verify: true,
    };
    await expect(tfjsManifestFormat.read!(ctx)).rejects.toThrow(CorruptCheckpointError);
  });
});

describe("detection", () => {
  const head = (s: string): Uint8Array => new TextEncoder().encode(s).subarray(0, 64);
  const file = (path: string, text: string) => ({ path, info: { kind: "file" as const, size: text.length }, head: head(text) });
  it("takes model.json, other tfjs .json files and folders holding model.json; nothing else", () => {
    expect(tfjsManifestFormat.detect(file("a/model.json", '\n {"whatever": 1}'))).toBe(true);
    expect(tfjsManifestFormat.detect(file("a/my-model-1.json", '{"modelTopology":{"class_name":"Sequential"'))).toBe(true);
    expect(tfjsManifestFormat.detect(file("a/x.json", '{\n  "format": "graph-model",'))).toBe(true);
    expect(tfjsManifestFormat.detect(file("a/config.json", '{"hidden_size": 12}'))).toBe(false);
    expect(tfjsManifestFormat.detect(file("a/model.safetensors.index.json", '{"metadata": {}, "weightsManifest": 1}'))).toBe(false);
    expect(tfjsManifestFormat.detect(file("a/model.json", "[1]"))).toBe(false);
    expect(tfjsManifestFormat.detect(file("a/model.pt", '{"format": 1}'))).toBe(false);
    expect(tfjsManifestFormat.detect({ path: "a", info: { kind: "directory", size: 0 }, entries: ["group1-shard1of1.bin", "model.json"] })).toBe(true);
    expect(tfjsManifestFormat.detect({ path: "a", info: { kind: "directory", size: 0 }, entries: [".metadata"] })).toBe(false);
    expect(tfjsManifestFormat.detect({ path: "a", info: { kind: "directory", size: 0 } })).toBe(false);
    expect(tfjsManifestFormat.write).toBeUndefined();
  });
});

describe("synthetic groups: quantization kinds, weights spanning several files", () => {
  it("decodes uint8/uint16/float16/int32-rounded/bool/complex64 across three shards at any range", async () => {
    const io = new MemoryIO();
    const halves = new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x7c00, 0x0001]).buffer); // 1, -2, inf, 2^-24
    const u16 = new Uint8Array(new Uint16Array([0, 1, 65535]).buffer);
    const data = [
      f32(1.5, -2.25, 3), // a: float32 [3]
      new Uint8Array([0, 10, 255, 7]), // b: uint8 → float32
      u16, // c: uint16 → float32
      halves, // d: float16 → float32
      new Uint8Array([0, 3, 4, 250]), // e: uint8 → int32 with rounding
      new Uint8Array([1, 0, 1]), // f: bool
      f32(1, 2, 3, 4), // g: complex64 [2]
    ];
    const all = new Uint8Array(data.reduce((n, d) => n + d.byteLength, 0));
    let at = 0;
    for (const d of data) {
      all.set(d, at);
      at += d.byteLength;
    }
    // Three shards of uneven sizes, with an empty one in the middle, so weights straddle files.
    const cut = [0, 5, 5, 13, all.byteLength];
    const shards: Record<string, Uint8Array> = {};
    const paths = [0, 1, 2, 3].map((i) => `group1-shard${i + 1}of4.bin`);
    paths.forEach((p, i) => (shards[p] = all.slice(cut[i], cut[i + 1])));
    const path = putModel(
      io,
      "syn",
      [
        {
          paths,
          weights: [
            { name: "a", shape: [3], dtype: "float32" },
            { name: "b", shape: [2, 2], dtype: "float32", quantization: { dtype: "uint8", min: -1, scale: 0.1, original_dtype: "float32" } },
            { name: "c", shape: [3], dtype: "float32", quantization: { dtype: "uint16", min: 0.5, scale: 0.001 } },
            { name: "d", shape: [4], dtype: "float32", quantization: { dtype: "float16", original_dtype: "float32" } },
            { name: "e", shape: [4], dtype: "int32", quantization: { dtype: "uint8", min: -1, scale: 0.5, original_dtype: "int32" } },
            { name: "f", shape: [3], dtype: "bool" },
            { name: "g", shape: [2], dtype: "complex64" },
          ],
        },
        { paths: [], weights: [{ name: "empty", shape: [0, 3], dtype: "float32" }] },
      ],
      shards,
    );
    const want: Record<string, number[]> = {
      a: [1.5, -2.25, 3],
      b: [0, 10, 255, 7].map((q) => Math.fround(q * 0.1 - 1)),
      c: [0, 1, 65535].map((q) => Math.fround(q * 0.001 + 0.5)),
      d: [1, -2, Infinity, 2 ** -24],
      e: [0, 3, 4, 250].map((q) => Math.round(q * 0.5 - 1)),
      f: [1, 0, 1],
      g: [1, 2, 3, 4],
      empty: [],
    };
    const dtypes: Record<string, string> = { e: "int32", f: "bool", g: "complex64" };
    for (const tree of [await tfjsFabric(io).load(path), await tfjsFabric(io).load("syn"), (await readDirect(path, io)) as Record<string, unknown>]) {
      expect(Object.keys(tree)).toEqual(Object.keys(want));
      for (const [name, values] of Object.entries(want)) {
        const t = tree[name] as StoredTensor;
        expect(t.dtype, name).toBe(dtypes[name] ?? "float32");
        expect(Array.from((await t.data()) as ArrayLike<number>), name).toEqual(values);
        // Every sub-range equals the same slice of the full bytes.
        const full = await t.bytes();
        for (let off = 0; off < t.byteLength; off++) {
          for (let len = 0; off + len <= t.byteLength; len++) {
            expect(await t.readRange(off, len), `${name} [${off}, +${len})`).toEqual(full.subarray(off, off + len));
          }
        }
      }
    }
  });
});
