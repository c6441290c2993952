import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { itemSize, safetensorsCode } from "../../src/dtype.js";
import { InvalidArgumentError, UnsupportedFormatError } from "../../src/errors.js";
import { encodeSafetensorsHeader, readSafetensorsHeader } from "../../src/formats/safetensors/header.js";
import { lazyTensors } from "../../src/formats/safetensors/reader.js";
import { writeSafetensors } from "../../src/formats/safetensors/writer.js";
import { HostTensor } from "../../src/tensor/stored-tensor.js";
import { TENSOR_SOURCE, type TensorSource } from "../../src/tensor/tensor-source.js";
import { MemorySink, MemorySource } from "./memory-io.js";
import { randomTensor, SAFETENSORS_DTYPES, sampleTensors } from "./util.js";

const FIXTURES = process.env.SAVEPOINT_FIXTURES ?? fileURLToPath(new URL("../../../../../shared/fixtures", import.meta.url));

async function write(tensors: { name: string; tensor: TensorSource }[], metadata?: Record<string, string>): Promise<Uint8Array> {
  const sink = new MemorySink();
  await writeSafetensors(sink, tensors, metadata);
  return sink.bytes();
}

/** A tensor source that streams through one small reused buffer, as device downloads do. */
function chunkyTensor(inner: HostTensor, chunk: number, lie = 0): TensorSource {
  return {
    [TENSOR_SOURCE]: true,
    dtype: inner.dtype,
    shape: inner.shape,
    byteLength: inner.byteLength,
    async *chunks() {
      const buf = new Uint8Array(chunk);
      const total = inner.byteLength + lie;
      for (let off = 0; off < total; off += chunk) {
        const len = Math.min(chunk, total - off);
        buf.fill(0);
        buf.set(inner.raw.subarray(off, off + len));
        yield buf.subarray(0, len);
      }
    },
  } as TensorSource;
}

describe("safetensors round trip", () => {
  it("writes and reads back every dtype bit for bit, with 0-dim and empty tensors", async () => {
    const tensors = sampleTensors();
    const bytes = await write(tensors, { format: "pt", note: "round trip ✓" });
    const src = new MemorySource(bytes, "rt.safetensors");
    const header = await readSafetensorsHeader(src);
    expect(header.metadata).toEqual({ format: "pt", note: "round trip ✓" });
    const back = lazyTensors(src, header, "rt.safetensors");
    expect(back.size).toBe(tensors.length);
    for (const { name, tensor } of tensors) {
      const t = back.get(name)!;
      expect(t, name).toBeDefined();
      expect(t.dtype, name).toBe(tensor.dtype);
      expect(t.shape, name).toEqual(tensor.shape);
      expect(await t.bytes(), name).toEqual(tensor.raw);
    }
  });

  it("lays out the file as the reference writer does", async () => {
    const bytes = await write(sampleTensors(), { a: "b" });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(text.startsWith('{"__metadata__":{"a":"b"},')).toBe(true);
    const json = text.trimEnd();
    expect(text.slice(json.length)).toMatch(/^ {0,7}$/);
    const h = await readSafetensorsHeader(new MemorySource(bytes));
    for (const e of h.entries) expect((e.begin - h.dataStart) % itemSize(e.dtype), e.name).toBe(0);
    // Key order in the JSON is the data order: the largest items first, then by name.
    const keys = Object.keys(JSON.parse(json) as object).filter((k) => k !== "__metadata__");
    expect(keys).toEqual(h.entries.map((e) => e.name));
    const sizes = h.entries.map((e) => itemSize(e.dtype));
    expect([...sizes].sort((a, b) => b - a)).toEqual(sizes);
  });

  it("rewrites files of safetensors.torch.save_file byte for byte", async () => {
    const names = [
      "safetensors-jl/non_sharded/model.safetensors",
      "safetensors-jl/sharded/model-00001-of-00006.safetensors",
      "safetensors-jl/sharded/model-00005-of-00006.safetensors",
      "darts/tiny_chronos2/model.safetensors",
      "burn/mnist/mnist.safetensors",
      "candle/jfk-codes.safetensors",
    ];
    for (const rel of names) {
      const original = new Uint8Array(readFileSync(join(FIXTURES, rel)));
      const src = new MemorySource(original, rel);
      const header = await readSafetensorsHeader(src);
      const tensors = [...lazyTensors(src, header, rel)].map(([name, tensor]) => ({ name, tensor })).reverse();
      const ours = await write(tensors, header.metadata ? { ...header.metadata } : undefined);
      expect(Buffer.from(ours).equals(Buffer.from(original)), rel).toBe(true);
    }
  });

  it("encodeSafetensorsHeader returns offsets per input entry", () => {
    const { header, offsets } = encodeSafetensorsHeader([
      { name: "b", dtype: "uint8", shape: [3] },
      { name: "a", dtype: "float64", shape: [2] },
      { name: "c", dtype: "float64", shape: [1] },
    ]);
    expect(offsets).toEqual([[24, 27], [0, 16], [16, 24]]);
    expect(header.byteLength % 8).toBe(0);
    const text = new TextDecoder().decode(header.subarray(8)).trimEnd();
    expect(text).toBe('{"a":{"dtype":"F64","shape":[2],"data_offsets":[0,16]},"c":{"dtype":"F64","shape":[1],"data_offsets":[16,24]},"b":{"dtype":"U8","shape":[3],"data_offsets":[24,27]}}');
  });

  it("writes an empty file that reads back", async () => {
    const bytes = await write([]);
    const h = await readSafetensorsHeader(new MemorySource(bytes));
    expect(h.entries).toEqual([]);
    expect(h.metadata).toBeNull();
    expect(new TextDecoder().decode(bytes.subarray(8)).trimEnd()).toBe("{}");
  });

  it("streams chunks from a reused buffer", async () => {
    const t = randomTensor("float32", [1000], 9);
    const bytes = await write([{ name: "w", tensor: chunkyTensor(t, 37) }]);
    const src = new MemorySource(bytes);
    const back = lazyTensors(src, await readSafetensorsHeader(src), "x");
    expect(await back.get("w")!.bytes()).toEqual(t.raw);
  });

  it("reads lazily, opening the file only when a tensor is read", async () => {
    const tensors = sampleTensors();
    const bytes = await write(tensors);
    const header = await readSafetensorsHeader(new MemorySource(bytes));
    let opens = 0;
    const src = new MemorySource(bytes);
    const map = lazyTensors(async () => (opens++, src), header, "lazy.safetensors");
    expect(opens).toBe(0);
    expect(await map.get("empty.float32")!.bytes()).toEqual(new Uint8Array(0));
    expect(opens).toBe(0);
    const t = map.get("t.int64")!;
    expect(t.location).toBe("lazy.safetensors:t.int64");
    expect(await t.readRange(8, 16)).toEqual(tensors.find((x) => x.name === "t.int64")!.tensor.raw.subarray(8, 24));
    await map.get("t.bfloat16")!.bytes();
    expect(opens).toBe(1);
    expect(src.reads.at(-2)).toEqual([header.entries.find((e) => e.name === "t.int64")!.begin + 8, 16]);
  });

  it("rejects bad input with typed errors", async () => {
    const t = randomTensor("float32", [2], 1);
    await expect(write([{ name: "a", tensor: t }, { name: "a", tensor: t }])).rejects.toThrow(InvalidArgumentError);
    await expect(write([{ name: "", tensor: t }])).rejects.toThrow(/non-empty/);
    await expect(write([{ name: "__metadata__", tensor: t }])).rejects.toThrow(InvalidArgumentError);
    await expect(write([{ name: "a", tensor: t }], { n: 1 as unknown as string })).rejects.toThrow(/only strings/);
    await expect(write([{ name: "a", tensor: t }], { n: "\ud800" })).rejects.toThrow(InvalidArgumentError);
    await expect(write([{ name: "c", tensor: randomTensor("complex128", [1], 1) }])).rejects.toThrow(UnsupportedFormatError);
    await expect(write([{ name: "short", tensor: chunkyTensor(t, 3, -2) }])).rejects.toThrow(/ended early/);
    await expect(write([{ name: "long", tensor: chunkyTensor(t, 3, 5) }])).rejects.toThrow(/more than its 8 bytes/);
    const liar = { ...chunkyTensor(t, 8), byteLength: 4 } as TensorSource;
    await expect(write([{ name: "liar", tensor: liar }])).rejects.toThrow(/declares 4 bytes/);
  });

  it("knows a safetensors code for every dtype it writes", () => {
    for (const d of SAFETENSORS_DTYPES) expect(typeof safetensorsCode(d)).toBe("string");
  });
});
