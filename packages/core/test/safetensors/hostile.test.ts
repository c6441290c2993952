import { describe, expect, it } from "vitest";
import { CorruptCheckpointError, UnsupportedFormatError } from "../../src/errors.js";
import { readSafetensorsHeader } from "../../src/formats/safetensors/header.js";
import { MemorySource } from "./memory-io.js";
import { rawFile } from "./util.js";

const FILE = "evil.safetensors";

/** Reads a hand-built file and returns the error it must raise. */
async function reject(bytes: Uint8Array, size?: number): Promise<{ err: Error; src: MemorySource }> {
  const src = new MemorySource(bytes, FILE, size);
  const err = await readSafetensorsHeader(src).then(
    () => {
      throw new Error("expected the header to be rejected");
    },
    (e: unknown) => e as Error,
  );
  return { err, src };
}

async function corrupt(bytes: Uint8Array, pattern: RegExp, tensor?: string): Promise<MemorySource> {
  const { err, src } = await reject(bytes);
  expect(err).toBeInstanceOf(CorruptCheckpointError);
  expect(err.message).toMatch(pattern);
  expect(err.message).toContain(FILE);
  if (tensor !== undefined) expect(err.message).toContain(JSON.stringify(tensor));
  expect(err.message).toMatch(/re-export|re-download/);
  return src;
}

const entry = (dtype: string, shape: number[], begin: number, end: number): string =>
  `{"dtype":"${dtype}","shape":[${shape.join(",")}],"data_offsets":[${begin},${end}]}`;

describe("hostile safetensors headers", () => {
  it("accepts a minimal valid file (the baseline the cases below break)", async () => {
    const src = new MemorySource(rawFile(`{"a":${entry("F32", [2], 0, 8)},"b":${entry("U8", [2], 8, 10)}}`, 10), FILE);
    const h = await readSafetensorsHeader(src);
    expect(h.entries.map((e) => e.name)).toEqual(["a", "b"]);
  });

  it("refuses a header length claiming 1 TB in a 1 KiB file, reading only the length", async () => {
    const bytes = rawFile("{}", 1024 - 10, 1n << 40n);
    expect(bytes.byteLength).toBe(1024);
    const src = await corrupt(bytes, /header length is 1099511627776 bytes, over the format's limit/);
    expect(src.largestRead).toBe(8);
  });

  it("refuses a header length past the end of the file", async () => {
    const src = await corrupt(rawFile("{}", 100, 5000n), /only 102 bytes follow/);
    expect(src.largestRead).toBe(8);
  });

  it("refuses a 2^64-1 header length", async () => {
    await corrupt(rawFile("{}", 0, (1n << 64n) - 1n), /over the format's limit/);
  });

  it("refuses a file shorter than 8 bytes", async () => {
    await corrupt(new Uint8Array(5), /5 bytes long/);
  });

  it("refuses a header claiming a terabyte tensor without reading or allocating it", async () => {
    const tb = 1 << 20;
    const src = await corrupt(rawFile(`{"huge":${entry("F32", [tb, tb / 4], 0, 2 ** 40)}}`, 16), /run past the 16-byte data section/, "huge");
    expect(src.largestRead).toBeLessThan(200);
  });

  it("refuses a shape whose size overflows", async () => {
    await corrupt(rawFile(`{"x":${entry("F64", [2 ** 40, 2 ** 40, 2 ** 40], 0, 8)}}`, 8), /needs 10633823966279326983230456482242756608 bytes/, "x");
  });

  it("refuses overlapping offsets", async () => {
    await corrupt(rawFile(`{"a":${entry("F32", [2], 0, 8)},"b":${entry("F32", [2], 4, 12)}}`, 12), /overlap the previous tensor/, "b");
  });

  it("refuses reversed (end before begin) offsets", async () => {
    await corrupt(rawFile(`{"a":${entry("U8", [0], 8, 0)}}`, 8), /end before they begin/, "a");
  });

  it("refuses gaps between tensors", async () => {
    await corrupt(rawFile(`{"a":${entry("F32", [1], 0, 4)},"b":${entry("F32", [1], 8, 12)}}`, 12), /leaving a gap/, "b");
    await corrupt(rawFile(`{"a":${entry("F32", [1], 4, 8)}}`, 8), /leaving a gap/, "a");
  });

  it("accepts keys out of offset order (the spec orders by offset) and returns file order", async () => {
    const h = await readSafetensorsHeader(new MemorySource(rawFile(`{"z":${entry("F32", [1], 4, 8)},"e":${entry("U8", [0], 8, 8)},"a":${entry("F32", [1], 0, 4)}}`, 8), FILE));
    expect(h.entries.map((e) => [e.name, e.begin - h.dataStart])).toEqual([["a", 0], ["z", 4], ["e", 8]]);
  });

  it("refuses duplicate keys that JSON.parse would silently merge", async () => {
    await corrupt(rawFile(`{"a":${entry("F32", [1], 0, 4)},"a":${entry("F32", [1], 4, 8)}}`, 8), /duplicate key "a"/);
    await corrupt(rawFile(`{"a":${entry("F32", [1], 0, 4)},"\\u0061":${entry("F32", [1], 0, 4)}}`, 4), /duplicate key "a"/);
    await corrupt(rawFile(`{"a":{"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]}}`, 4), /duplicate key "dtype"/);
    await corrupt(rawFile(`{"__metadata__":{"k":"1","k":"2"}}`), /duplicate key "k"/);
    await corrupt(rawFile(`{"__metadata__":{},"__metadata__":{}}`), /duplicate key "__metadata__"/);
  });

  it("refuses a header that is not valid UTF-8", async () => {
    const h = new TextEncoder().encode(`{"a":${entry("U8", [1], 0, 1)}}`);
    h[2] = 0xff;
    await corrupt(rawFile(h, 1), /not valid UTF-8/);
    await corrupt(rawFile(new Uint8Array([0x7b, 0xc3, 0x28, 0x7d]), 0), /not valid UTF-8/);
  });

  it("refuses metadata with a non-string value", async () => {
    await corrupt(rawFile(`{"__metadata__":{"epoch":3}}`), /__metadata__\["epoch"\] is number 3, but metadata values must be strings/);
    await corrupt(rawFile(`{"__metadata__":{"a":{"b":"c"}}}`), /must be strings/);
    await corrupt(rawFile(`{"__metadata__":["a"]}`), /must be an object of strings/);
  });

  it("refuses trailing bytes after the last tensor", async () => {
    await corrupt(rawFile(`{"a":${entry("F32", [1], 0, 4)}}`, 5), /cover 4 bytes of data but the data section holds 5 bytes \(1 trailing bytes\)/);
    await corrupt(rawFile(`{}`, 3), /3 trailing bytes/);
  });

  it("refuses an unknown dtype with UnsupportedFormatError naming file and tensor", async () => {
    const { err } = await reject(rawFile(`{"w":${entry("F4", [2], 0, 1)}}`, 1));
    expect(err).toBeInstanceOf(UnsupportedFormatError);
    expect(err.message).toContain('"F4"');
    expect(err.message).toContain(`tensor "w" in ${FILE}`);
  });

  it("refuses a size that disagrees with dtype and shape", async () => {
    await corrupt(rawFile(`{"w":${entry("F32", [3], 0, 8)}}`, 8), /F32 shape \[3\] needs 12 bytes but its data_offsets \[0, 8\] span 8/, "w");
  });

  it("refuses unknown and missing entry fields", async () => {
    await corrupt(rawFile(`{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"offsets":[0,1]}}`, 1), /unknown field "offsets"/, "w");
    await corrupt(rawFile(`{"w":{"dtype":"U8","shape":[1]}}`, 1), /lacks "data_offsets"/, "w");
    await corrupt(rawFile(`{"w":[1]}`, 1), /not an object/, "w");
  });

  it("refuses bad shapes and offsets", async () => {
    await corrupt(rawFile(`{"w":${entry("U8", [-1], 0, 1)}}`, 1), /non-negative integers/, "w");
    await corrupt(rawFile(`{"w":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}}`, 1), /non-negative integers/, "w");
    await corrupt(rawFile(`{"w":{"dtype":"U8","shape":["1"],"data_offsets":[0,1]}}`, 1), /non-negative integers/, "w");
    await corrupt(rawFile(`{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}`, 1), /two non-negative integers/, "w");
    await corrupt(rawFile(`{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1e300]}}`, 1), /two non-negative integers/, "w");
    await corrupt(rawFile(`{"w":{"dtype":8,"shape":[1],"data_offsets":[0,1]}}`, 1), /not a string/, "w");
  });

  it("refuses headers that are not a JSON object starting with '{'", async () => {
    await corrupt(rawFile(` {}`), /does not start with '\{'/);
    await corrupt(rawFile(`\ufeff{}`), /does not start with '\{'/);
    await corrupt(rawFile(`{"a":}`), /not valid JSON/);
    await corrupt(rawFile(`{} x`), /not valid JSON/);
    await corrupt(rawFile(`{}\0\0\0\0\0\0`), /not valid JSON/);
    await corrupt(rawFile(`{"a\u0001":1}`), /not valid JSON/);
    await corrupt(rawFile(`{"\\ud800":${entry("U8", [0], 0, 0)}}`), /lone surrogate/);
    await corrupt(rawFile(`{"a":${"[".repeat(100000)}${"]".repeat(100000)}}`), /nesting deeper/);
  });

  it("accepts whitespace padding and null metadata", async () => {
    const h = await readSafetensorsHeader(new MemorySource(rawFile(`{ "__metadata__" : null ,"a":${entry("U8", [1], 0, 1)}\n}\t   `, 1), FILE));
    expect(h.metadata).toBeNull();
    expect(h.entries).toHaveLength(1);
  });

  it("keeps a __proto__ metadata key as plain data", async () => {
    const h = await readSafetensorsHeader(new MemorySource(rawFile(`{"__metadata__":{"__proto__":"x","a":"b"}}`), FILE));
    expect(Object.getPrototypeOf(h.metadata)).toBe(Object.prototype);
    expect(Object.keys(h.metadata!)).toEqual(["__proto__", "a"]);
    expect(h.metadata!["__proto__"]).toBe("x");
  });
});
