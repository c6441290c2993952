import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readSafetensorsHeader } from "../../src/formats/safetensors/header.js";
import { lazyTensors } from "../../src/formats/safetensors/reader.js";
import { writeSafetensors } from "../../src/formats/safetensors/writer.js";
import { runPython, skipWithoutTorch } from "../helpers/python.js";
import { MemorySink, MemorySource } from "./memory-io.js";
import type { TensorData } from "../../src/tensor/typed-arrays.js";
import { sampleTensors } from "./util.js";

// The Python `safetensors` package is not installed here, so Python checks our files from first
// principles: json for the header (duplicate keys refused), numpy/torch to decode the data.
const CHECK = String.raw`
import json, struct, sys
import numpy as np, torch
path = sys.argv[1]
b = open(path, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
raw = b[8:8 + n]
assert n % 8 == 0, "header not padded to 8"
assert raw[:1] == b"{", "header must start with {"
text = raw.decode("utf-8")
assert text == text.rstrip(" ") + " " * (len(text) - len(text.rstrip(" "))), "padding must be spaces"
def no_dups(pairs):
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), "duplicate keys"
    return dict(pairs)
h = json.loads(text, object_pairs_hook=no_dups)
meta = h.pop("__metadata__", None)
data = b[8 + n:]
NP = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
      "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?", "C64": "<c8"}
SIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
        "I32": 4, "U32": 4, "F32": 4, "C64": 8, "F64": 8, "I64": 8, "U64": 8}
RANK = list(SIZE)
ents = sorted(h.items(), key=lambda kv: tuple(kv[1]["data_offsets"]))
# The reference writer's layout: dtype rank descending, then name by UTF-8 bytes.
want = sorted(h, key=lambda k: (-RANK.index(h[k]["dtype"]), k.encode()))
nonempty = [k for k, v in ents if v["data_offsets"][0] != v["data_offsets"][1]]
assert nonempty == [k for k in want if k in nonempty], "layout order differs from safetensors' writer"
assert list(h) == want, "JSON key order differs from safetensors' writer"
pos = 0
out = {}
for k, v in ents:
    assert set(v) == {"dtype", "shape", "data_offsets"}, k
    s, e = v["data_offsets"]
    assert s == pos, ("gap or overlap", k)
    assert e - s == int(np.prod(v["shape"], dtype=np.int64)) * SIZE[v["dtype"]], ("size", k)
    assert s % SIZE[v["dtype"]] == 0, ("unaligned", k)
    pos = e
    buf = data[s:e]
    d = v["dtype"]
    if d == "BF16":
        vals = torch.frombuffer(bytearray(buf), dtype=torch.bfloat16).to(torch.float64).numpy() if buf else np.zeros(0)
    elif d in NP:
        vals = np.frombuffer(buf, dtype=NP[d])
        if d == "C64":
            vals = vals.view("<f4")
    else:
        out[k] = {"dtype": d, "shape": v["shape"], "values": None}
        continue
    vals = vals.reshape(-1)
    if d in ("I64", "U64"):
        vals = [str(int(x)) for x in vals]
    elif d == "BOOL":
        vals = [1 if x else 0 for x in vals]
    else:
        vals = [repr(float(x)) for x in vals]
    out[k] = {"dtype": d, "shape": v["shape"], "values": vals}
assert pos == len(data), "data section not covered exactly"
print(json.dumps({"metadata": meta, "tensors": out}))
`;

// A writer that is not ours and not canonical: spaces, reversed keys, metadata last, no padding.
const WRITE = String.raw`
import json, struct, sys
import numpy as np, torch
path = sys.argv[1]
ts = {
  "w": np.arange(12, dtype="<f4").reshape(3, 4) / 7,
  "ids": np.array([[1, -2], [2**40, -2**62]], dtype="<i8"),
  "mask": np.array([True, False, True]),
  "half": np.array([1.5, -0.25, 65504], dtype="<f2"),
  "scalar": np.array(3.25, dtype="<f8"),
  "none": np.zeros((2, 0), dtype="<i4"),
}
bf = torch.tensor([1.0, -2.5, 3.140625], dtype=torch.bfloat16)
blobs = [(k, a.dtype.str, list(a.shape), a.tobytes()) for k, a in ts.items()]
blobs.append(("bf", "BF16", [3], bf.view(torch.int16).numpy().astype("<i2").tobytes()))
CODE = {"<f4": "F32", "<i8": "I64", "|b1": "BOOL", "<f2": "F16", "<f8": "F64", "<i4": "I32", "BF16": "BF16"}
header, data = {}, b""
for k, dt, shape, raw in reversed(blobs):
    header[k] = {"shape": shape, "data_offsets": [len(data), len(data) + len(raw)], "dtype": CODE[dt]}
    data += raw
header["__metadata__"] = {"writer": "python", "note": "naïve"}
hb = json.dumps(header, indent=1, ensure_ascii=False).encode()
open(path, "wb").write(struct.pack("<Q", len(hb)) + hb + data)
`;

// savepoint's checksums, recomputed from the format description alone (zlib.crc32, json.dumps).
const CRCS = String.raw`
import json, struct, sys, zlib
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n].decode("utf-8"))
meta = h.pop("__metadata__")
data = b[8 + n:]
crcs = json.loads(meta["savepoint.crc32"])
assert sorted(crcs) == sorted(h), "one CRC per tensor"
for k, v in h.items():
    s, e = v["data_offsets"]
    assert crcs[k] == "%08x" % zlib.crc32(data[s:e]), k
dump = lambda x: json.dumps(x, ensure_ascii=False)
lines = [dump(k) + ":" + dump(meta[k]) + "\n" for k in sorted(meta) if k != "savepoint.header_crc32"]
for k, v in sorted(h.items(), key=lambda kv: (kv[1]["data_offsets"][0], kv[1]["data_offsets"][1], kv[0])):
    s, e = v["data_offsets"]
    lines.append("%s:%s:[%s]:%d,%d\n" % (dump(k), v["dtype"], ",".join(map(str, v["shape"])), s, e))
want = "%08x" % zlib.crc32("".join(lines).encode("utf-8"))
assert meta["savepoint.header_crc32"] == want, (meta["savepoint.header_crc32"], want)
print("ok", len(h))
`;

/** Plain array of a tensor's values, whatever typed array holds them. */
const values = (d: TensorData): (number | bigint)[] => Array.from(d as ArrayLike<number | bigint>);

const dir = mkdtempSync(join(tmpdir(), "savepoint-st-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(skipWithoutTorch())("safetensors interop with Python (json + numpy + torch)", () => {
  it("Python reads our file and decodes the same values", async () => {
    const tensors = sampleTensors();
    const sink = new MemorySink();
    await writeSafetensors(sink, tensors, { format: "pt", "ключ": "значение" });
    const path = join(dir, "ours.safetensors");
    writeFileSync(path, sink.bytes());

    const py = JSON.parse(runPython(CHECK, [path])) as {
      metadata: Record<string, string>;
      tensors: Record<string, { dtype: string; shape: number[]; values: (string | number)[] | null }>;
    };
    expect(py.metadata).toEqual({ format: "pt", "ключ": "значение" });
    expect(Object.keys(py.tensors).sort()).toEqual(tensors.map((t) => t.name).sort());
    let compared = 0;
    for (const { name, tensor } of tensors) {
      const p = py.tensors[name]!;
      expect(p.shape, name).toEqual(tensor.shape);
      if (p.values === null) continue; // float8: neither numpy nor torch 1.13 has it
      const ours = values(await tensor.data());
      const theirs = p.values.map((v) => (typeof v === "number" ? v : /^-?\d+$/.test(v) && typeof ours[0] === "bigint" ? BigInt(v) : Number(v.replace("inf", "Infinity"))));
      expect(theirs, name).toEqual(ours);
      compared++;
    }
    expect(compared).toBeGreaterThanOrEqual(14 * 3);
  });

  it("Python recomputes the CRC-32s savepoint puts in __metadata__ (tensors and header), as docs/reference/formats.md defines them", async () => {
    const tensors = sampleTensors();
    const sink = new MemorySink();
    await writeSafetensors(sink, tensors, { format: "pt", "ключ": "значение" }, { checksums: true });
    const path = join(dir, "checksummed.safetensors");
    writeFileSync(path, sink.bytes());
    // The strict layout check still passes: the checksums are ordinary string metadata.
    const py = JSON.parse(runPython(CHECK, [path])) as { metadata: Record<string, string> };
    expect(Object.keys(py.metadata).sort()).toEqual(["format", "savepoint.crc32", "savepoint.header_crc32", "ключ"]);
    const out = runPython(CRCS, [path]).trim();
    expect(out).toBe(`ok ${tensors.length}`);
  });

  it("we read a file Python wrote by hand in a non-canonical layout", async () => {
    const path = join(dir, "theirs.safetensors");
    runPython(WRITE, [path]);
    const bytes = new Uint8Array(readFileSync(path));
    const src = new MemorySource(bytes, path);
    const header = await readSafetensorsHeader(src);
    expect(header.metadata).toEqual({ writer: "python", note: "naïve" });
    const t = lazyTensors(src, header, path);
    expect([...t.keys()]).toEqual(["bf", "none", "scalar", "half", "mask", "ids", "w"]);
    expect(Array.from((await t.get("w")!.data()) as Float32Array)).toEqual(Array.from(Float32Array.from({ length: 12 }, (_, i) => i / 7)));
    expect(t.get("w")!.shape).toEqual([3, 4]);
    expect(Array.from((await t.get("ids")!.data()) as BigInt64Array)).toEqual([1n, -2n, 2n ** 40n, -(2n ** 62n)]);
    expect(values(await t.get("mask")!.data())).toEqual([1, 0, 1]);
    expect(values(await t.get("half")!.data())).toEqual([1.5, -0.25, 65504]);
    expect(t.get("scalar")!.shape).toEqual([]);
    expect(values(await t.get("scalar")!.data())).toEqual([3.25]);
    expect(t.get("none")!.shape).toEqual([2, 0]);
    expect(t.get("none")!.byteLength).toBe(0);
    expect(values(await t.get("bf")!.data())).toEqual([1, -2.5, 3.140625]);
  });
});
