// CRC-32s in the __metadata__ of safetensors files savepoint writes: written by the format (single
// and sharded), checked on load by default, skipped with verify: false, absent from foreign files.
import { describe, expect, it } from "vitest";
import { HEADER_CRC_KEY, TENSOR_CRC_KEY } from "../../src/formats/safetensors/checksums.js";
import { readSafetensorsHeader, type SafetensorsHeader } from "../../src/formats/safetensors/header.js";
import { writeSafetensors } from "../../src/formats/safetensors/writer.js";
import { safetensorsIndexFormatWith } from "../../src/formats/safetensors-index/safetensors-index-format.js";
import { crc32 } from "../../src/formats/zip/crc32.js";
import { CorruptCheckpointError, Fabric, HostTensor, MemoryIO, type StoredTensor } from "../../src/index.js";
import { indexFabric } from "../safetensors-index/util.js";
import { MemorySink, MemorySource } from "./memory-io.js";
import { randomTensor } from "./util.js";

const PATH = "ck/model.safetensors";

function state() {
  return {
    w: randomTensor("float32", [64, 32], 1), // 8 KiB
    b: randomTensor("float32", [32], 2),
    big: randomTensor("uint8", [3 << 20], 3), // several verified pieces
    empty: randomTensor("float16", [0, 4], 4),
    step: 7,
  };
}

async function saved(): Promise<{ io: MemoryIO; header: SafetensorsHeader; bytes: Uint8Array }> {
  const io = new MemoryIO();
  await new Fabric({ io }).save(PATH, state());
  const bytes = io.files.get(PATH)!;
  return { io, bytes, header: await readSafetensorsHeader(new MemorySource(bytes, PATH)) };
}

function entry(h: SafetensorsHeader, name: string) {
  return h.entries.find((e) => e.name === name)!;
}

/** A copy of the IO's files with one byte of `path` XOR-ed. */
function flipped(io: MemoryIO, path: string, at: number, mask = 0x01): MemoryIO {
  const out = new MemoryIO();
  for (const [k, v] of io.files) out.files.set(k, v);
  const b = io.files.get(path)!.slice();
  b[at]! ^= mask;
  out.files.set(path, b);
  return out;
}

describe("safetensors checksums", () => {
  it("a saved file records each tensor's CRC-32 and a header CRC, beside format and the tree", async () => {
    const { header, bytes } = await saved();
    const md = header.metadata!;
    expect(md.format).toBe("pt");
    expect(md["savepoint.tree"]).toBeDefined();
    expect(md[HEADER_CRC_KEY]).toMatch(/^[0-9a-f]{8}$/);
    const crcs = JSON.parse(md[TENSOR_CRC_KEY]!) as Record<string, string>;
    expect(Object.keys(crcs).sort()).toEqual(["b", "big", "empty", "w"]);
    for (const e of header.entries) expect(crcs[e.name]).toBe(crc32(bytes.subarray(e.begin, e.end)).toString(16).padStart(8, "0"));
  });

  it("a flipped data byte fails the read of that tensor, naming file and tensor; other tensors read", async () => {
    const { io, header } = await saved();
    const w = entry(header, "w");
    const damaged = flipped(io, PATH, w.begin + 100);
    const back = (await new Fabric({ io: damaged }).load(PATH)) as Record<string, StoredTensor>;
    const err = await back.w!.data().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CorruptCheckpointError);
    expect((err as Error).message).toMatch(/^\[savepoint\] ck\/model\.safetensors is damaged: tensor "w" has CRC-32 [0-9a-f]{8} but .*savepoint\.crc32.*verify: false/);
    // The failure sticks: a second read does not hand the bytes out.
    await expect(back.w!.bytes()).rejects.toThrow(CorruptCheckpointError);
    expect(await back.b!.bytes()).toEqual(state().b.raw);
  });

  it("a damaged tensor is caught however it is read: in chunks (at the last one), a range from the middle, a short prefix", async () => {
    const { io, header } = await saved();
    const big = entry(header, "big");
    const damaged = flipped(io, PATH, big.end - 1);
    const load = async () => ((await new Fabric({ io: damaged }).load(PATH)) as Record<string, StoredTensor>).big!;

    const chunks: number[] = [];
    const streamed = (async () => {
      for await (const c of (await load()).chunks(1 << 20)) chunks.push(c.byteLength);
    })();
    await expect(streamed).rejects.toThrow(/tensor "big"/);
    // The damaged last chunk is never handed out (a short remaining tail is checked early).
    expect(chunks.length).toBeLessThan(3);

    await expect((await load()).readRange(1 << 20, 16)).rejects.toThrow(/tensor "big"/);
    // A prefix of a small tensor: its short tail is checked before the bytes are handed out.
    const w = entry(header, "w");
    const damagedW = flipped(io, PATH, w.end - 1);
    const back = (await new Fabric({ io: damagedW }).load(PATH)) as Record<string, StoredTensor>;
    await expect(back.w!.readRange(0, 16)).rejects.toThrow(/tensor "w"/);
  });

  it("an intact file reads every way: whole, in chunks, ranges out of order, concurrently", async () => {
    const { io } = await saved();
    const want = state();
    const back = (await new Fabric({ io }).load(PATH)) as Record<string, StoredTensor>;
    expect(await back.w!.bytes()).toEqual(want.w.raw);
    const big = back.big!;
    const [a, b] = await Promise.all([big.readRange(2 << 20, 100), big.bytes()]);
    expect(a).toEqual(want.big.raw.subarray(2 << 20, (2 << 20) + 100));
    // Compared by CRC: a deep equal of megabytes is slow in vitest.
    expect(crc32(b)).toBe(crc32(want.big.raw));
    let streamed = 0;
    for await (const c of big.chunks(777_777)) streamed = crc32(c, streamed);
    expect(streamed).toBe(crc32(want.big.raw));
    expect((await back.empty!.bytes()).byteLength).toBe(0);
  });

  it("with verify: false a damaged tensor reads as stored, flipped byte included", async () => {
    const { io, header } = await saved();
    const w = entry(header, "w");
    const damaged = flipped(io, PATH, w.begin + 100, 0xff);
    const back = (await new Fabric({ io: damaged, verify: false }).load(PATH)) as Record<string, StoredTensor>;
    const bytes = await back.w!.bytes();
    const want = state().w.raw.slice();
    want[100]! ^= 0xff;
    expect(bytes).toEqual(want);
  });

  it("a header flip that keeps the JSON valid (F32 → I32: same size, other values) fails at load", async () => {
    const { io, bytes } = await saved();
    const text = new TextDecoder().decode(bytes.subarray(0, 4096));
    const at = text.indexOf('"dtype":"F32"') + '"dtype":"'.length;
    const damaged = flipped(io, PATH, at, "F".charCodeAt(0) ^ "I".charCodeAt(0));
    const err = await new Fabric({ io: damaged }).load(PATH).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CorruptCheckpointError);
    expect((err as Error).message).toMatch(/ck\/model\.safetensors is damaged: its header .* has CRC-32 [0-9a-f]{8} but __metadata__\["savepoint\.header_crc32"\] records/);
    // Without verify the same file loads, with the wrong dtype: what the header CRC prevents.
    const loose = (await new Fabric({ io: damaged, verify: false }).load(PATH)) as Record<string, StoredTensor>;
    expect([loose.w!.dtype, loose.b!.dtype].sort()).toEqual(["float32", "int32"]);
  });

  it("a damaged CRC table is refused, not trusted", async () => {
    const { io, bytes } = await saved();
    const text = new TextDecoder().decode(bytes.subarray(0, 4096));
    const at = text.indexOf(`"${TENSOR_CRC_KEY}"`); // the table's key name
    expect(at).toBeGreaterThan(0);
    // Without the header CRC a renamed key would make the file look unchecked; with it, refused.
    await expect(new Fabric({ io: flipped(io, PATH, at + 2) }).load(PATH)).rejects.toThrow(/header_crc32/);
  });

  it("a file without the checksum metadata (another writer's) loads as before, verify on", async () => {
    const sink = new MemorySink();
    const t = randomTensor("float32", [4, 4], 9);
    await writeSafetensors(sink, [{ name: "w", tensor: t }], { format: "pt" });
    const io = new MemoryIO();
    io.files.set("hf/model.safetensors", sink.bytes());
    const back = (await new Fabric({ io }).load("hf/model.safetensors")) as Record<string, StoredTensor>;
    expect(await back.w!.bytes()).toEqual(t.raw);
    expect((await readSafetensorsHeader(new MemorySource(sink.bytes()))).metadata).toEqual({ format: "pt" });
  });

  it("sharded saves carry CRCs in every shard; a damaged shard fails naming shard, index and tensor", async () => {
    const io = new MemoryIO();
    const fabric = indexFabric(io, safetensorsIndexFormatWith({ maxShardSize: 300 }));
    const tensors = { a: randomTensor("float32", [50], 1), b: randomTensor("float32", [50], 2), c: HostTensor.fromValues("int64", [2], [1n, 2n]) };
    await fabric.save("sh/model.safetensors.index.json", tensors);
    const shards = [...io.files.keys()].filter((k) => k.endsWith(".safetensors")).sort();
    expect(shards.length).toBeGreaterThan(1);
    for (const s of shards) {
      const h = await readSafetensorsHeader(new MemorySource(io.files.get(s)!, s));
      expect(h.metadata!.format).toBe("pt");
      expect(Object.keys(JSON.parse(h.metadata![TENSOR_CRC_KEY]!) as object).sort()).toEqual(h.entries.map((e) => e.name).sort());
      expect(h.metadata![HEADER_CRC_KEY]).toMatch(/^[0-9a-f]{8}$/);
    }
    const first = shards[0]!;
    const h = await readSafetensorsHeader(new MemorySource(io.files.get(first)!, first));
    const victim = h.entries[0]!;
    const damaged = flipped(io, first, victim.begin + 3);
    const back = (await indexFabric(damaged).load("sh/model.safetensors.index.json")) as Record<string, StoredTensor>;
    await expect(back[victim.name]!.bytes()).rejects.toThrow(
      new RegExp(`${first.replace(/[.]/g, "\\.")} \\(a shard of sh/model\\.safetensors\\.index\\.json\\) is damaged: tensor "${victim.name}"`),
    );
    const loose = (await new Fabric({ io: damaged, verify: false, formats: [safetensorsIndexFormatWith()] }).load("sh/model.safetensors.index.json")) as Record<string, StoredTensor>;
    expect((await loose[victim.name]!.bytes()).byteLength).toBe(victim.end - victim.begin);
  });
});
