import { statfs, rm, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readZip, verifyEntry } from "../../src/formats/zip/reader.js";
import { ZipWriter } from "../../src/formats/zip/writer.js";
import { runPython, skipWithoutTorch } from "../helpers/python.js";
import { dataView, pattern } from "./build.js";
import { SparseFileSink, SparseSink, zeros, type SparseSource } from "./memory-io.js";
import type { ByteSink } from "../../src/io/byte-source.js";

const BIG = 0xffffffff + 100; // crosses 4 GiB and needs zip64 sizes
const before = pattern(100, 1);
const after = pattern(100, 2);

async function writeBigArchive(sink: ByteSink): Promise<void> {
  const writer = new ZipWriter(sink);
  await writer.addEntry("big/before", before, before.length);
  await writer.addEntry("big/data/0", zeros(BIG), BIG);
  await writer.addEntry("big/after", after, after.length); // its header offset is past 4 GiB
  await writer.finish();
}

async function bytesAt(source: SparseSource, offset: number, length: number): Promise<DataView> {
  return dataView(await source.read(offset, length));
}

describe("zip64", () => {
  it("writes an entry crossing 4 GiB without holding it, and reads the zip64 records back", async () => {
    const sink = new SparseSink();
    await writeBigArchive(sink);
    const stored = sink.segments.reduce((n, s) => n + s.bytes.length, 0);
    expect(stored).toBeLessThan(1 << 20); // only headers and the small entries were kept
    const source = sink.toSource();
    const archive = await readZip(source);
    expect(archive.entries.map((e) => [e.name, e.size])).toEqual([
      ["big/before", 100],
      ["big/data/0", BIG],
      ["big/after", 100],
    ]);
    const big = archive.get("big/data/0")!;
    const last = archive.get("big/after")!;
    expect(last.localHeaderOffset).toBeGreaterThan(2 ** 32);
    for (const e of archive.entries) expect(e.dataOffset % 64).toBe(0);
    expect(await source.read(last.dataOffset, 100)).toEqual(after);

    // Local header of the big entry: 0xFFFFFFFF sizes, version 45, a zip64 extra before the FB padding.
    const local = await bytesAt(source, big.localHeaderOffset, 30 + 10 + 24);
    expect(local.getUint16(4, true)).toBe(45);
    expect(local.getUint32(18, true)).toBe(0xffffffff);
    expect(local.getUint32(22, true)).toBe(0xffffffff);
    expect(local.getUint16(40, true)).toBe(0x0001);
    expect(local.getUint16(42, true)).toBe(16);
    expect(local.getUint16(60, true)).toBe(0x4246);
    // Its data descriptor has 8-byte sizes.
    const descriptor = await bytesAt(source, big.dataOffset + BIG, 24);
    expect(descriptor.getUint32(0, true)).toBe(0x08074b50);
    expect(descriptor.getUint32(4, true)).toBe(big.crc32);
    expect(descriptor.getUint32(8, true) + descriptor.getUint32(12, true) * 2 ** 32).toBe(BIG);
    // The central directory starts past 4 GiB, so a zip64 end record and locator precede the EOCD.
    const end = await bytesAt(source, source.size - 22 - 20, 42);
    expect(end.getUint32(0, true)).toBe(0x07064b50);
    expect(end.getUint32(20, true)).toBe(0x06054b50);
    expect(end.getUint32(20 + 16, true)).toBe(0xffffffff);

    for (const e of archive.entries) await verifyEntry(archive, e); // streams the 4 GiB of zeros in chunks
  });

  it.skipIf(skipWithoutTorch())("is read by Python's zipfile from a sparse file", async (ctx) => {
    const dir = await mkdtemp(join(tmpdir(), "savepoint-zip64-"));
    try {
      const free = await statfs(dir);
      if (free.bavail * free.bsize < 10 * 2 ** 30) ctx.skip("less than 10 GiB free in the temp directory");
      const path = join(dir, "big.zip");
      const sink = await SparseFileSink.create(path);
      await writeBigArchive(sink);
      await sink.close();
      const out = runPython(
        `
import json, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    infos = [[i.filename, i.file_size, i.header_offset] for i in z.infolist()]
    print(json.dumps({"infos": infos, "bad": z.testzip(), "after": list(z.read("big/after"))}))
`,
        [path],
      );
      const result = JSON.parse(out) as { infos: Array<[string, number, number]>; bad: string | null; after: number[] };
      expect(result.bad).toBeNull();
      expect(result.infos.map(([n, s]) => [n, s])).toEqual([
        ["big/before", 100],
        ["big/data/0", BIG],
        ["big/after", 100],
      ]);
      expect(result.infos[2]![2]).toBeGreaterThan(2 ** 32);
      expect(result.after).toEqual([...after]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
