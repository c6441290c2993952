/**
 * Fuzzing the zip reader: damaged archives (ours, aligned and not, and a torch 2.x file with data
 * descriptors) either read as a directory whose entries stay inside the file and apart from each
 * other, or fail with savepoint's errors; and whatever our writer writes reads back exactly.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { crc32 } from "../../src/formats/zip/crc32.js";
import { readZip, verifyEntry } from "../../src/formats/zip/reader.js";
import { writeArchive } from "../zip/build.js";
import { TIMEOUT_MS, corpus, memorySource, mutated, outcome, params } from "./harness.js";

const seeds = corpus("zip");

describe("fuzz: zip reader", () => {
  it("damaged archives: a consistent directory or a savepoint error, within a second", async () => {
    for (const s of seeds) await readZip(memorySource(s));
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof({ weight: 6, arbitrary: mutated(seeds) }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }) }), async (bytes) => {
        const r = await outcome(async () => {
          const zip = await readZip(memorySource(bytes, "fuzz.zip"));
          for (const e of zip.entries) {
            expect(e.dataOffset).toBeGreaterThanOrEqual(e.localHeaderOffset + 30);
            expect(e.dataOffset + e.size).toBeLessThanOrEqual(bytes.length);
            expect(zip.get(e.name)).toBe(e);
          }
          expect(new Set(zip.entries.map((e) => e.name)).size).toBe(zip.entries.length);
          const sorted = [...zip.entries].sort((a, b) => a.localHeaderOffset - b.localHeaderOffset);
          for (let i = 1; i < sorted.length; i++) expect(sorted[i - 1]!.dataOffset + sorted[i - 1]!.size).toBeLessThanOrEqual(sorted[i]!.localHeaderOffset);
          // Data whose CRC matches is what the writer stored; a mismatch is a typed error.
          for (const e of zip.entries) await outcome(() => verifyEntry(zip, e));
        });
        if ("error" in r) expect(r.error.message).toContain("fuzz.zip");
        else accepted++;
      }),
      params(40_000),
    );
    expect(accepted).toBeGreaterThan(0);
  }, TIMEOUT_MS);

  const entries = fc.uniqueArray(fc.tuple(fc.string({ unit: "grapheme", minLength: 1, maxLength: 24 }), fc.uint8Array({ maxLength: 300 })), {
    maxLength: 8,
    selector: ([name]) => name,
  });

  it("round trip: our writer's archives read back name for name, byte for byte", async () => {
    await fc.assert(
      fc.asyncProperty(entries, fc.constantFrom(1, 2, 64, 4096), async (list, align) => {
        const bytes = await writeArchive(list, { align });
        const zip = await readZip(memorySource(bytes));
        expect(zip.entries.map((e) => e.name)).toEqual(list.map(([n]) => n));
        for (const [i, e] of zip.entries.entries()) {
          const data = list[i]![1];
          expect(e.size).toBe(data.length);
          expect(e.crc32).toBe(crc32(data));
          if (align > 1) expect(e.dataOffset % align).toBe(0);
          expect(Buffer.from(bytes.subarray(e.dataOffset, e.dataOffset + e.size)).equals(Buffer.from(data))).toBe(true);
          await verifyEntry(zip, e);
        }
      }),
      params(6000),
    );
  }, TIMEOUT_MS);
});
