import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { CorruptCheckpointError, Fabric, LazyTensor, MemoryIO, UnsafeCheckpointError, UnsupportedFormatError, type StoredTensor } from "../../src/index.js";
import { torchLegacyFormat } from "../../src/formats/torch-legacy/torch-legacy-format.js";
import { closeTo, FIXTURES, flatten, loadExpected, summarize } from "../helpers/fixtures.js";
import { runPython, skipWithoutTorch } from "../helpers/python.js";
import { allTensors } from "./all-tensors.js";
import { buildLegacy, f32, LegacyTensor } from "./legacy-builder.js";

const expected = loadExpected();
const LEGACY = [
  "burn/torch-legacy/simple_legacy.pt",
  "burn/torch-legacy/legacy_uncloned_views.pt",
  "burn/torch-legacy/legacy_with_offsets.pt",
  "burn/torch-legacy/legacy_shared_storage.pt",
  "pyannote-legacy/2018_softmax_0001.pt",
  "pyannote-legacy/2018_softmax_0001.optimizer.pt",
  "pyannote-legacy/2019_sad_0140.domain.pt",
];
const ONMT = "opennmt-legacy/test_model2_torch0.2_legacy.pt";

async function values(t: unknown): Promise<number[]> {
  return Array.from(await (t as StoredTensor).data(), Number);
}

/** Loads `bytes` as `name` from memory. */
async function loadBytes(bytes: Uint8Array, options: { safe?: "strict" | "placeholder" } = {}, name = "m.pt") {
  const io = new MemoryIO();
  io.files.set(name, bytes);
  const fabric = new Fabric({ io, ...options });
  return { io, tree: await fabric.load(name) };
}

describe("legacy torch files (torch < 1.6)", () => {
  it("is detected by its magic number, and never chosen for writing", () => {
    const head = readFileSync(`${FIXTURES}/${LEGACY[0]}`).subarray(0, 64);
    expect(torchLegacyFormat.detect({ path: "x.pt", info: { kind: "file", size: 100 }, head })).toBe(true);
    expect(torchLegacyFormat.detect({ path: "x.pt", info: { kind: "file", size: 100 }, head: new Uint8Array([0x80, 0x02, 0x8a, 0x0a]) })).toBe(false);
    expect(torchLegacyFormat.write).toBeUndefined();
    expect(new Fabric().formats.forWrite("model.pt").name).toBe("torch");
  });

  for (const file of LEGACY) {
    it(`${file} matches expected.json, also under safe: "strict"`, async () => {
      const tree = await new Fabric({ safe: "strict" }).load(`${FIXTURES}/${file}`);
      const flat = flatten(tree);
      for (const [path, e] of Object.entries(expected[file]!.entries)) {
        if (!("dtype" in e)) continue;
        const t = flat.get(path);
        expect(t, path).toBeInstanceOf(LazyTensor);
        const s = await summarize(t as StoredTensor);
        expect([s.dtype, s.shape, closeTo(s.sum, e.sum)], path).toEqual([e.dtype, e.shape, true]);
      }
    });
  }

  it("views sharing one storage read their own bytes (offsets 10 and 50 of one 100-element storage)", async () => {
    const tree = (await new Fabric().load(`${FIXTURES}/burn/torch-legacy/legacy_uncloned_views.pt`)) as Record<string, StoredTensor>;
    expect(await values(tree.tensor1)).toEqual([10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
    expect(await values(tree.tensor2)).toEqual([50, 51, 52, 53, 54, 55, 56, 57, 58, 59]);
  });

  it("old-style storage views (view_metadata) and strided views into a shared storage", async () => {
    const root = f32(Array.from({ length: 12 }, (_, i) => i));
    const object = {
      whole: new LegacyTensor("root", 0, [3, 4], [4, 1]),
      transposed: new LegacyTensor("root", 0, [4, 3], [1, 4]),
      viewed: new LegacyTensor("root", 1, [2], [1], ["v1", 6, 4]), // elements 7, 8 of the root
      other: new LegacyTensor("b", 0, [2], [1]),
    };
    const bytes = buildLegacy(object, { root: { cls: "FloatStorage", numel: 12, bytes: root }, b: { cls: "DoubleStorage", numel: 2, bytes: new Uint8Array(new Float64Array([0.5, -2]).buffer) } });
    const { tree } = await loadBytes(bytes, { safe: "strict" });
    const t = tree as Record<string, StoredTensor>;
    expect(await values(t.whole)).toEqual(Array.from({ length: 12 }, (_, i) => i));
    expect(await values(t.transposed)).toEqual([0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
    expect(await values(t.viewed)).toEqual([7, 8]);
    expect([t.other!.dtype, await values(t.other)]).toEqual(["float64", [0.5, -2]]);
  });

  it("_rebuild_tensor (v1) is read like v2", async () => {
    const bytes = buildLegacy({ w: new LegacyTensor("k", 1, [2], [1]) }, { k: { cls: "FloatStorage", numel: 3, bytes: f32([1, 2, 3]) } }, { rebuild: "_rebuild_tensor" });
    const { tree } = await loadBytes(bytes);
    expect(await values((tree as Record<string, unknown>).w)).toEqual([2, 3]);
  });

  it("reads headers only at load; a touched tensor reads its own bytes", async () => {
    const bytes = readFileSync(`${FIXTURES}/pyannote-legacy/2019_sad_0140.domain.pt`);
    const { io, tree } = await loadBytes(new Uint8Array(bytes));
    // The pickles are ~1 KiB; the rest (≈ 395 KB) is storage data, of which at most one
    // read-ahead block and the 8-byte counts may be read.
    expect(io.bytesRead).toBeLessThan(80 * 1024);
    const before = io.bytesRead;
    const w = flatten(tree).get("1.weight") as StoredTensor;
    await w.bytes();
    expect(io.bytesRead - before).toBe(w.byteLength);
  });

  it("a truncated file is a CorruptCheckpointError, in the pickles or in the storages", async () => {
    const bytes = new Uint8Array(readFileSync(`${FIXTURES}/burn/torch-legacy/simple_legacy.pt`));
    await expect(loadBytes(bytes.subarray(0, bytes.length - 5))).rejects.toThrow(CorruptCheckpointError);
    await expect(loadBytes(bytes.subarray(0, 200))).rejects.toThrow(CorruptCheckpointError);
    await expect(loadBytes(bytes.subarray(0, 200))).rejects.toThrow(/truncated/);
  });

  it("refuses inconsistent storage headers and big-endian files", async () => {
    const good = buildLegacy({ w: new LegacyTensor("k", 0, [3], [1]) }, { k: { cls: "FloatStorage", numel: 3, bytes: f32([1, 2, 3]) } });
    const wrongCount = good.slice();
    new DataView(wrongCount.buffer).setBigInt64(good.length - 12 - 8, 4n, true);
    await expect(loadBytes(wrongCount)).rejects.toThrow(/4 elements in the file but 3/);
    const tooFar = buildLegacy({ w: new LegacyTensor("k", 2, [3], [1]) }, { k: { cls: "FloatStorage", numel: 3, bytes: f32([1, 2, 3]) } });
    await expect(loadBytes(tooFar)).rejects.toThrow(CorruptCheckpointError);
    const big = buildLegacy({ w: new LegacyTensor("k", 0, [3], [1]) }, { k: { cls: "FloatStorage", numel: 3, bytes: f32([1, 2, 3]) } }, { littleEndian: false });
    await expect(loadBytes(big)).rejects.toThrow(UnsupportedFormatError);
  });

  it("Python 2's OpenNMT model loads: cuda:0 storages on the host, unknown classes inert", async () => {
    const tree = await new Fabric().load(`${FIXTURES}/${ONMT}`);
    expect(allTensors(tree).length).toBeGreaterThan(30);
    await expect(new Fabric({ safe: "strict" }).load(`${FIXTURES}/${ONMT}`)).rejects.toThrow(UnsafeCheckpointError);
  });
});

/** Every tensor torch 1.13 finds in a legacy file (unknown classes stubbed), as dtype/shape/hex. */
const TORCH_TENSORS = `
import json, pickle, sys, torch
class Stub:
    def __init__(self, *a, **k): self.args = a
    def __setstate__(self, s): self.state = s
class U(pickle.Unpickler):  # Debian's torch 1.13 ignores pickle_module; patch the module instead
    def find_class(self, m, n):
        if m in ('torch', 'torch._utils', 'torch.nn.parameter', 'collections', 'builtins', '__builtin__', 'copy_reg', 'copyreg', '_codecs') or m.startswith('numpy'):
            try: return super().find_class(m, n)
            except Exception: pass
        return type(n, (Stub,), {})
pickle.Unpickler = U
obj = torch.load(sys.argv[1], map_location='cpu')
out, seen = [], set()
def walk(o):
    if id(o) in seen: return
    seen.add(id(o))
    if isinstance(o, torch.Tensor):
        t = o.detach().contiguous(); out.append([str(t.dtype)[6:], list(t.shape), t.numpy().tobytes().hex()]); return
    if isinstance(o, dict):
        for v in o.values(): walk(v)
    elif isinstance(o, (list, tuple, set)):
        for v in o: walk(v)
    elif hasattr(o, '__dict__'): walk(vars(o))
walk(obj)
print(json.dumps(out))
`;

describe.skipIf(skipWithoutTorch())("legacy files against torch 1.13", () => {
  for (const file of [ONMT, "pyannote-legacy/2019_sad_0140.domain.pt", "pyannote-legacy/2018_softmax_0001.optimizer.pt"]) {
    it(`${file}: the same tensors, bit for bit`, async () => {
      // Compared as sets: torch wraps a tensor in a separate Parameter object, savepoint returns the tensor itself.
      const theirs = [...new Set((JSON.parse(runPython(TORCH_TENSORS, [`${FIXTURES}/${file}`])) as [string, number[], string][]).map((t) => JSON.stringify(t)))].sort();
      const tree = await new Fabric().load(`${FIXTURES}/${file}`);
      const ours = await Promise.all(
        allTensors(tree).map(async (t) => JSON.stringify([t.dtype, [...t.shape], Buffer.from(await t.bytes()).toString("hex")])),
      );
      expect([...new Set(ours)].sort()).toEqual(theirs);
    });
  }
});
