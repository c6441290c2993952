/**
 * Fuzzing the safetensors header reader: generated headers (well-formed, nearly well-formed and
 * wrong in every field) and damaged real files either parse into entries that tile the data
 * section exactly, each sized by its dtype and shape, or fail with savepoint's errors; and every
 * header our encoder writes reads back the same.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DTYPES, itemSize, safetensorsCode, type DType } from "../../src/dtype.js";
import { encodeSafetensorsHeader, readSafetensorsHeader } from "../../src/formats/safetensors/header.js";
import { TIMEOUT_MS, corpus, memorySource, mutated, outcome, params } from "./harness.js";

const seeds = corpus("safetensors");
const CODES = ["BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64", "C64", "F8_E4M3", "F8_E5M2"];
/** dtypes the encoder can write (every savepoint dtype with a safetensors code). */
const WRITABLE = DTYPES.filter((d) => {
  try {
    return CODES.includes(safetensorsCode(d));
  } catch {
    return false;
  }
});

const name = fc.oneof(fc.string({ unit: "grapheme", minLength: 1, maxLength: 12 }), fc.constantFrom("__metadata__", "__proto__", "constructor", "a", "a.b"));
const dim = fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0, max: 6 }) }, { weight: 1, arbitrary: fc.constantFrom(-1, 1.5, 2 ** 53, 2 ** 40, "3", null) });
const shape = fc.oneof({ weight: 8, arbitrary: fc.array(dim, { maxLength: 3 }) }, { weight: 1, arbitrary: fc.constantFrom("[]", {}, null) });
const code = fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...CODES) }, { weight: 1, arbitrary: fc.constantFrom("F128", "f32", "", "toString") });

/**
 * A header object and data length: entries placed back to back (as a writer would) and then
 * perturbed: offsets moved, swapped or reversed, sizes off by one, fields added or dropped.
 */
const header = fc
  .record({
    entries: fc.array(fc.record({ name, code, shape }), { maxLength: 5 }),
    metadata: fc.option(fc.oneof(fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }), fc.constantFrom(null, { a: 1 }, "x")), { nil: undefined }),
    damage: fc.array(fc.tuple(fc.nat(), fc.constantFrom("shift", "grow", "swap", "reverse", "extra", "drop", "dup")), { maxLength: 2 }),
    slack: fc.constantFrom(0, 0, 0, 1, -1, 7),
  })
  .map(({ entries, metadata, damage, slack }) => {
    const obj: Record<string, unknown> = {};
    if (metadata !== undefined) obj.__metadata__ = metadata;
    let cursor = 0;
    const placed = entries.map((e) => {
      const n = Array.isArray(e.shape) && e.shape.every((d) => typeof d === "number") ? (e.shape as number[]).reduce((a, b) => a * b, 1) : 1;
      const size = Number.isSafeInteger(n) && n < 1e6 ? n * (CODES.indexOf(e.code as string) >= 0 ? sizeOf(e.code as string) : 4) : 4;
      const offsets = [cursor, cursor + size];
      cursor += size;
      return { ...e, offsets };
    });
    for (const [i, how] of damage) {
      const e = placed[i % Math.max(1, placed.length)];
      if (!e) break;
      if (how === "shift") e.offsets = [e.offsets[0]! + 1, e.offsets[1]! + 1];
      if (how === "grow") e.offsets = [e.offsets[0]!, e.offsets[1]! + 1];
      if (how === "reverse") e.offsets = [e.offsets[1]!, e.offsets[0]!];
      if (how === "swap" && placed.length > 1) [e.offsets, placed[0]!.offsets] = [placed[0]!.offsets, e.offsets];
    }
    for (const e of placed) obj[e.name] = { dtype: e.code, shape: e.shape, data_offsets: e.offsets };
    let text = JSON.stringify(obj);
    for (const [, how] of damage) {
      if (how === "extra") text = text.replace(/"data_offsets"/, '"extra":1,"data_offsets"');
      if (how === "drop") text = text.replace(/"dtype":"[^"]*",/, "");
      if (how === "dup" && placed[0]) text = text.replace(/}$/, `,${JSON.stringify(placed[0].name)}:{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}`);
    }
    return { text, data: Math.max(0, cursor + slack) };
  })
  .map(({ text, data }) => {
    const json = Buffer.from(text, "utf8");
    const padded = Math.ceil(json.length / 8) * 8;
    const out = new Uint8Array(8 + padded + data).fill(0x20, 8 + json.length, 8 + padded);
    new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
    out.set(json, 8);
    return out;
  });

function sizeOf(c: string): number {
  return { BOOL: 1, U8: 1, I8: 1, F8_E4M3: 1, F8_E5M2: 1, I16: 2, U16: 2, F16: 2, BF16: 2, I32: 4, U32: 4, F32: 4, C64: 8, F64: 8, I64: 8, U64: 8 }[c] ?? 4;
}

describe("fuzz: safetensors header", () => {
  it("generated and damaged headers: exact tiling or a savepoint error, within a second", async () => {
    for (const s of seeds) await readSafetensorsHeader(memorySource(s));
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof({ weight: 3, arbitrary: header }, { weight: 2, arbitrary: mutated(seeds) }), async (bytes) => {
        const r = await outcome(() => readSafetensorsHeader(memorySource(bytes, "fuzz.safetensors")));
        if ("error" in r) {
          expect(r.error.message).toContain("fuzz.safetensors");
          return;
        }
        accepted++;
        const h = r.value;
        let cursor = h.dataStart;
        for (const e of h.entries) {
          expect(e.begin).toBe(cursor);
          expect(e.end - e.begin).toBe(e.shape.reduce((a, b) => a * b, 1) * itemSize(e.dtype));
          cursor = e.end;
        }
        expect(cursor).toBe(bytes.length);
        if (h.metadata) for (const v of Object.values(h.metadata)) expect(typeof v).toBe("string");
      }),
      params(30_000),
    );
    expect(accepted).toBeGreaterThan(0);
  }, TIMEOUT_MS);

  const entry = fc.record({ name: fc.string({ unit: "grapheme", minLength: 1, maxLength: 16 }).filter((n) => n !== "__metadata__"), dtype: fc.constantFrom(...WRITABLE) as fc.Arbitrary<DType>, shape: fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 3 }) });

  it("round trip: what the encoder writes reads back entry for entry", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(entry, { maxLength: 6, selector: (e) => e.name }), fc.option(fc.dictionary(fc.string({ unit: "grapheme" }), fc.string({ unit: "grapheme" }), { maxKeys: 3 }), { nil: undefined }), async (entries, metadata) => {
        const { header: bytes, offsets } = encodeSafetensorsHeader(entries, metadata);
        const dataLength = offsets.reduce((m, [, end]) => Math.max(m, end), 0);
        const file = new Uint8Array(bytes.length + dataLength);
        file.set(bytes);
        const h = await readSafetensorsHeader(memorySource(file));
        expect(h.entries.length).toBe(entries.length);
        for (const [i, e] of entries.entries()) {
          const got = h.entries.find((x) => x.name === e.name)!;
          expect(got.dtype).toBe(e.dtype);
          expect([...got.shape]).toEqual(e.shape);
          expect([got.begin - h.dataStart, got.end - h.dataStart]).toEqual(offsets[i]);
        }
        expect(h.metadata === null ? undefined : { ...h.metadata }).toEqual(metadata);
      }),
      params(10_000),
    );
  }, TIMEOUT_MS);
});
