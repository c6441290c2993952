import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../src/errors.js";
import { readZip, verifyEntry } from "../../src/formats/zip/reader.js";
import { ZipWriter } from "../../src/formats/zip/writer.js";
import { dataView, pattern, sameBytes, text, writeArchive } from "./build.js";
import { MemorySink, MemorySource } from "./memory-io.js";

async function* asyncChunks(data: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < data.length; at += size) yield data.subarray(at, at + size);
}

describe("ZipWriter + readZip round trip", () => {
  const contents: Array<[string, Uint8Array]> = [
    ["archive/data.pkl", pattern(333, 1)],
    ["archive/byteorder", text("little")],
    ["archive/data/0", new Uint8Array(0)],
    ["archive/data/1", pattern(1, 2)],
    ["archive/data/2", pattern(63, 3)],
    ["archive/data/3", pattern(64, 4)],
    ["archive/data/4", pattern(65, 5)],
    ["archive/data/5", pattern(100_000, 6)],
    ["archive/データ/ünïcode", pattern(17, 7)],
    ["archive/version", text("3\n")],
  ];

  for (const align of [64, 1, 7, 4096]) {
    it(`writes entries whose data starts at multiples of ${align} and reads them back`, async () => {
      const bytes = await writeArchive(contents, { align });
      const archive = await readZip(new MemorySource(bytes));
      expect(archive.entries.map((e) => e.name)).toEqual(contents.map(([n]) => n));
      for (const [name, data] of contents) {
        const entry = archive.get(name)!;
        expect(entry.size).toBe(data.length);
        expect(entry.dataOffset % align).toBe(0);
        expect(sameBytes(bytes.subarray(entry.dataOffset, entry.dataOffset + entry.size), data)).toBe(true);
        await verifyEntry(archive, entry);
      }
      expect(archive.get("missing")).toBeUndefined();
    });
  }

  it("writes torch's layout: flags 0x0808, zeroed local CRC/sizes, FB padding of Z, data descriptors", async () => {
    const bytes = await writeArchive([["a/data/0", pattern(10)], ["a/version", text("3\n")]]);
    const archive = await readZip(new MemorySource(bytes));
    const v = dataView(bytes);
    for (const entry of archive.entries) {
      const at = entry.localHeaderOffset;
      expect(v.getUint32(at, true)).toBe(0x04034b50);
      expect(v.getUint16(at + 4, true)).toBe(20);
      expect(v.getUint16(at + 6, true)).toBe(0x0808);
      expect([v.getUint32(at + 14, true), v.getUint32(at + 18, true), v.getUint32(at + 22, true)]).toEqual([0, 0, 0]);
      const nameLength = v.getUint16(at + 26, true);
      const extraLength = v.getUint16(at + 28, true);
      const extra = at + 30 + nameLength;
      expect(v.getUint16(extra, true)).toBe(0x4246);
      expect(v.getUint16(extra + 2, true)).toBe(extraLength - 4);
      expect([...bytes.subarray(extra + 4, extra + extraLength)].every((b) => b === 0x5a)).toBe(true);
      const descriptor = entry.dataOffset + entry.size;
      expect(v.getUint32(descriptor, true)).toBe(0x08074b50);
      expect(v.getUint32(descriptor + 4, true)).toBe(entry.crc32);
      expect(v.getUint32(descriptor + 8, true)).toBe(entry.size);
      expect(v.getUint32(descriptor + 12, true)).toBe(entry.size);
    }
    // The first entry's data at 64 means the padding went to exactly 64 (30 + 8 + 4 + 22).
    expect(archive.entries[0]!.dataOffset).toBe(64);
  });

  it("is deterministic", async () => {
    expect(sameBytes(await writeArchive(contents), await writeArchive(contents))).toBe(true);
  });

  it("streams sync and async iterables and computes the CRC on the fly", async () => {
    const data = pattern(300_000, 9);
    const sink = new MemorySink();
    const writer = new ZipWriter(sink);
    await writer.addEntry("async", asyncChunks(data, 7_777), data.length);
    await writer.addEntry("sync", [data.subarray(0, 5), data.subarray(5)], data.length);
    await writer.addEntry("empty-stream", [], 0);
    await writer.finish();
    const archive = await readZip(new MemorySource(sink.bytes()));
    for (const name of ["async", "sync"]) {
      const entry = archive.get(name)!;
      await verifyEntry(archive, entry);
      expect(sameBytes(sink.bytes().subarray(entry.dataOffset, entry.dataOffset + entry.size), data)).toBe(true);
    }
    expect(archive.get("empty-stream")!.size).toBe(0);
  });

  it("coalesces small writes and passes big chunks through uncopied", async () => {
    const sink = new MemorySink();
    const writer = new ZipWriter(sink);
    for (let i = 0; i < 200; i++) await writer.addEntry(`t/data/${i}`, pattern(40, i), 40);
    const big = pattern(1 << 20, 99);
    await writer.addEntry("t/big", big, big.length);
    await writer.finish();
    // 200 headers + entries in one buffered write, the big chunk, then descriptor + directory + end.
    expect(sink.writes.length).toBeLessThanOrEqual(4);
    expect(sink.writes).toContain(big);
    expect(Math.min(...sink.writes.map((w) => w.length))).toBeGreaterThan(1000);
    const archive = await readZip(new MemorySource(sink.bytes()));
    expect(archive.entries.length).toBe(201);
    for (const e of archive.entries) await verifyEntry(archive, e);
  });

  it("writes an empty archive", async () => {
    const bytes = await writeArchive([]);
    expect(bytes.length).toBe(22);
    expect((await readZip(new MemorySource(bytes))).entries).toEqual([]);
  });

  it("uses a zip64 end record when there are 65,535 entries or more", async () => {
    const sink = new MemorySink();
    const writer = new ZipWriter(sink, { align: 1 });
    const n = 70_000;
    for (let i = 0; i < n; i++) await writer.addEntry(`e${i}`, pattern(3, i), 3);
    await writer.finish();
    const bytes = sink.bytes();
    const v = dataView(bytes);
    expect(v.getUint32(bytes.length - 22 - 20, true)).toBe(0x07064b50);
    expect(v.getUint16(bytes.length - 22 + 10, true)).toBe(0xffff);
    const archive = await readZip(new MemorySource(bytes));
    expect(archive.entries.length).toBe(n);
    expect(archive.entries[n - 1]!.name).toBe(`e${n - 1}`);
    await verifyEntry(archive, archive.get("e69999")!);
  });
});

describe("ZipWriter misuse", () => {
  it("rejects a stream shorter than declared and is unusable afterwards", async () => {
    const writer = new ZipWriter(new MemorySink());
    await expect(writer.addEntry("x", [new Uint8Array(3)], 4)).rejects.toThrow(InvalidArgumentError);
    await expect(writer.addEntry("y", new Uint8Array(1), 1)).rejects.toThrow(/earlier write failed.*"x"/s);
    await expect(writer.finish()).rejects.toThrow(InvalidArgumentError);
  });

  it("rejects a stream longer than declared without writing past the declared size", async () => {
    const sink = new MemorySink();
    const writer = new ZipWriter(sink);
    await expect(writer.addEntry("x", [new Uint8Array(3), new Uint8Array(3)], 4)).rejects.toThrow(/more than the declared 4 bytes/);
    await expect(writer.finish()).rejects.toThrow(InvalidArgumentError);
  });

  it("rejects a Uint8Array of the wrong size, duplicate names and bad arguments, staying usable", async () => {
    const sink = new MemorySink();
    const writer = new ZipWriter(sink);
    await expect(writer.addEntry("x", new Uint8Array(3), 4)).rejects.toThrow(InvalidArgumentError);
    await writer.addEntry("x", new Uint8Array(3), 3);
    await expect(writer.addEntry("x", new Uint8Array(3), 3)).rejects.toThrow(/already written/);
    await expect(writer.addEntry("", new Uint8Array(0), 0)).rejects.toThrow(InvalidArgumentError);
    await expect(writer.addEntry("n", new Uint8Array(0), -1)).rejects.toThrow(InvalidArgumentError);
    await expect(writer.addEntry("s", "abc" as unknown as Uint8Array, 3)).rejects.toThrow(InvalidArgumentError);
    await writer.finish();
    await expect(writer.addEntry("late", new Uint8Array(0), 0)).rejects.toThrow(/after finish/);
    expect((await readZip(new MemorySource(sink.bytes()))).entries.map((e) => e.name)).toEqual(["x"]);
  });

  it("rejects concurrent calls and chunks that are not bytes", async () => {
    const writer = new ZipWriter(new MemorySink());
    const first = writer.addEntry("a", new Uint8Array(10), 10);
    await expect(writer.addEntry("b", new Uint8Array(1), 1)).rejects.toThrow(/await each call/);
    await first;
    await expect(writer.addEntry("c", [[1, 2, 3] as unknown as Uint8Array], 3)).rejects.toThrow(/not a Uint8Array/);
  });

  it("rejects bad alignment", () => {
    expect(() => new ZipWriter(new MemorySink(), { align: 0 })).toThrow(InvalidArgumentError);
    expect(() => new ZipWriter(new MemorySink(), { align: 1.5 })).toThrow(InvalidArgumentError);
    expect(() => new ZipWriter(new MemorySink(), { align: 1 << 20 })).toThrow(InvalidArgumentError);
  });

  it("propagates sink failures and stays failed", async () => {
    const failing = { position: 0, write: async () => { throw new Error("disk full"); } };
    const writer = new ZipWriter(failing);
    await writer.addEntry("a", new Uint8Array(10), 10); // buffered, not yet written
    await expect(writer.addEntry("b", new Uint8Array(1 << 20), 1 << 20)).rejects.toThrow("disk full");
    await expect(writer.finish()).rejects.toThrow(/disk full/);
  });
});
