/** Damaged and hostile archives fail with typed errors that name the entry, before allocating. */
import { describe, expect, it } from "vitest";
import { CorruptCheckpointError, UnsupportedFormatError } from "../../src/errors.js";
import { crc32 } from "../../src/formats/zip/crc32.js";
import { readZip, verifyEntry } from "../../src/formats/zip/reader.js";
import { dataView, layout, pattern, text, writeArchive } from "./build.js";
import { MemorySource } from "./memory-io.js";

const base = await writeArchive([
  ["archive/data.pkl", pattern(50, 1)],
  ["archive/data/0", pattern(200, 2)],
  ["archive/version", text("3\n")],
]);
const { eocd, cdOffset, central } = layout(base);
const pkl = central[0]!;
const data0 = central[1]!;

function patched(edit: (bytes: Uint8Array, v: DataView) => void): MemorySource {
  const bytes = base.slice();
  edit(bytes, dataView(bytes));
  return new MemorySource(bytes, "hostile.pt");
}

async function failure(source: MemorySource): Promise<Error> {
  const err = await readZip(source).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof Error)) throw new Error("expected readZip to fail");
  expect(err.message).toMatch(/^\[savepoint\] hostile\.pt/);
  return err;
}

/** The archive with its end replaced by a zip64 end record holding `values`, a locator and an EOCD deferring to them. */
function withZip64End(values: { count: number; cdSize: number; cdOffset: number }): MemorySource {
  const head = base.subarray(0, eocd);
  const out = new Uint8Array(head.length + 56 + 20 + 22);
  out.set(head);
  const v = dataView(out);
  const setU64 = (at: number, x: number) => {
    v.setUint32(at, x % 2 ** 32, true);
    v.setUint32(at + 4, Math.floor(x / 2 ** 32), true);
  };
  let p = head.length;
  v.setUint32(p, 0x06064b50, true);
  setU64(p + 4, 44);
  setU64(p + 24, values.count);
  setU64(p + 32, values.count);
  setU64(p + 40, values.cdSize);
  setU64(p + 48, values.cdOffset);
  p += 56;
  v.setUint32(p, 0x07064b50, true);
  setU64(p + 8, head.length);
  v.setUint32(p + 16, 1, true);
  p += 20;
  v.setUint32(p, 0x06054b50, true);
  v.setUint16(p + 8, 0xffff, true);
  v.setUint16(p + 10, 0xffff, true);
  v.setUint32(p + 12, 0xffffffff, true);
  v.setUint32(p + 16, 0xffffffff, true);
  return new MemorySource(out, "hostile.pt");
}

describe("hostile and damaged archives", () => {
  it("the untouched base archive reads, also through a synthesised zip64 end", async () => {
    expect((await readZip(new MemorySource(base))).entries.length).toBe(3);
    const cdSize = eocd - cdOffset;
    expect((await readZip(withZip64End({ count: 3, cdSize, cdOffset }))).entries.length).toBe(3);
  });

  it("local and central names disagree", async () => {
    const err = await failure(patched((b) => void (b[data0.localOffset + 30 + "archive/data/".length] = "1".charCodeAt(0))));
    expect(err).toBeInstanceOf(CorruptCheckpointError);
    expect(err.message).toMatch(/entry "archive\/data\/0".*disagree.*"archive\/data\/1"/);
  });

  it("a local header without a data descriptor must carry the central CRC and sizes", async () => {
    const clearFlag = (b: Uint8Array, v: DataView) => v.setUint16(data0.localOffset + 6, 0x0800, true);
    const err = await failure(patched(clearFlag));
    expect(err).toBeInstanceOf(CorruptCheckpointError);
    expect(err.message).toMatch(/"archive\/data\/0".*disagree.*CRC/);
    // With the real values filled in it reads.
    const fixed = patched((b, v) => {
      clearFlag(b, v);
      v.setUint32(data0.localOffset + 14, crc32(pattern(200, 2)), true);
      v.setUint32(data0.localOffset + 18, 200, true);
      v.setUint32(data0.localOffset + 22, 200, true);
    });
    expect((await readZip(fixed)).get("archive/data/0")!.size).toBe(200);
  });

  it("a broken local header signature", async () => {
    const err = await failure(patched((b, v) => v.setUint32(pkl.localOffset, 0x12345678, true)));
    expect(err).toBeInstanceOf(CorruptCheckpointError);
    expect(err.message).toMatch(/"archive\/data.pkl".*no local file header/);
  });

  it("an EOCD claiming a huge central directory fails without reading it", async () => {
    const source = patched((b, v) => v.setUint32(eocd + 12, 0xffffff00, true));
    expect(await failure(source)).toBeInstanceOf(CorruptCheckpointError);
    expect(source.largestRead).toBeLessThanOrEqual(65_557);
    expect(source.reads.some((r) => r.offset === cdOffset)).toBe(false);
  });

  it("a central directory offset past the end", async () => {
    expect(await failure(patched((b, v) => v.setUint32(eocd + 16, 0x7fffffff, true)))).toBeInstanceOf(CorruptCheckpointError);
  });

  it("an entry count bomb fails before allocating (16-bit and zip64 counts)", async () => {
    const small = patched((b, v) => {
      v.setUint16(eocd + 8, 60_000, true);
      v.setUint16(eocd + 10, 60_000, true);
    });
    expect((await failure(small)).message).toMatch(/claims 60000 entries/);
    expect(small.reads.some((r) => r.offset === cdOffset)).toBe(false);

    const bomb = withZip64End({ count: 1e9, cdSize: eocd - cdOffset, cdOffset });
    const err = await failure(bomb);
    expect(err).toBeInstanceOf(CorruptCheckpointError);
    expect(err.message).toMatch(/claims 1000000000 entries/);
    expect(bomb.largestRead).toBeLessThanOrEqual(65_557);

    const huge = withZip64End({ count: 3, cdSize: 2 ** 50, cdOffset });
    expect(await failure(huge)).toBeInstanceOf(CorruptCheckpointError);
    expect(huge.largestRead).toBeLessThanOrEqual(65_557);
  });

  it("a zip64 locator pointing nowhere", async () => {
    const source = withZip64End({ count: 3, cdSize: eocd - cdOffset, cdOffset });
    dataView(source.bytes).setUint32(source.bytes.length - 22 - 20 + 8, 5, true);
    expect((await failure(source)).message).toMatch(/no zip64 end record/);
  });

  it("truncated files", async () => {
    for (const length of [base.length - 1, base.length - 22, base.length >> 1, 21, 0]) {
      const err = await failure(new MemorySource(base.subarray(0, length), "hostile.pt"));
      expect(err).toBeInstanceOf(CorruptCheckpointError);
    }
    // Losing bytes at the front moves everything the directory points at.
    const err = await failure(new MemorySource(base.subarray(64), "hostile.pt"));
    expect(err).toBeInstanceOf(CorruptCheckpointError);
  });

  it("not a zip at all", async () => {
    expect((await failure(new MemorySource(pattern(10_000, 5), "hostile.pt"))).message).toMatch(/not a zip archive/);
  });

  it("a compressed (method 8) entry is unsupported, naming it", async () => {
    const err = await failure(patched((b, v) => v.setUint16(data0.at + 10, 8, true)));
    expect(err).toBeInstanceOf(UnsupportedFormatError);
    expect(err.message).toMatch(/"archive\/data\/0" is compressed \(zip method 8\)/);
  });

  it("an encrypted entry is unsupported", async () => {
    const err = await failure(patched((b, v) => v.setUint16(pkl.at + 8, 0x0809, true)));
    expect(err).toBeInstanceOf(UnsupportedFormatError);
    expect(err.message).toMatch(/"archive\/data.pkl" is encrypted/);
  });

  it("a multi-disk archive is unsupported", async () => {
    expect(await failure(patched((b, v) => v.setUint16(eocd + 4, 1, true)))).toBeInstanceOf(UnsupportedFormatError);
  });

  it("overlapping entries", async () => {
    const err = await failure(
      patched((b, v) => {
        v.setUint32(pkl.at + 20, 150, true);
        v.setUint32(pkl.at + 24, 150, true);
      }),
    );
    expect(err).toBeInstanceOf(CorruptCheckpointError);
    expect(err.message).toMatch(/"archive\/data.pkl".*overlaps entry "archive\/data\/0"/);
  });

  it("an entry whose data runs into the central directory", async () => {
    const err = await failure(patched((b, v) => v.setUint32(central[2]!.at + 42, cdOffset - 40, true)));
    expect(err).toBeInstanceOf(CorruptCheckpointError);
    expect(err.message).toMatch(/"archive\/version".*central directory/);
  });

  it("a stored entry whose compressed and uncompressed sizes differ", async () => {
    expect(await failure(patched((b, v) => v.setUint32(data0.at + 20, 199, true)))).toBeInstanceOf(CorruptCheckpointError);
  });

  it("a 0xFFFFFFFF size without its zip64 extra field", async () => {
    const err = await failure(
      patched((b, v) => {
        v.setUint32(data0.at + 20, 0xffffffff, true);
        v.setUint32(data0.at + 24, 0xffffffff, true);
      }),
    );
    expect(err.message).toMatch(/"archive\/data\/0".*zip64 extra field is missing/);
  });

  it("a damaged central header signature", async () => {
    expect((await failure(patched((b, v) => v.setUint32(data0.at, 0, true)))).message).toMatch(/entry 1 of 3/);
  });

  it("flipped data bytes fail the CRC check, naming the entry", async () => {
    const source = new MemorySource(base.slice(), "hostile.pt");
    const archive = await readZip(source);
    const entry = archive.get("archive/data/0")!;
    source.bytes[entry.dataOffset + 100]! ^= 0xff;
    await verifyEntry(archive, archive.get("archive/data.pkl")!);
    const err = await verifyEntry(archive, entry).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptCheckpointError);
    expect((err as Error).message).toMatch(/hostile\.pt \(entry "archive\/data\/0"\): CRC-32 mismatch/);
  });
});
