import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { readSafetensorsHeader } from "../../src/formats/safetensors/header.js";
import { lazyTensors } from "../../src/formats/safetensors/reader.js";
import { fileSource } from "./memory-io.js";
import { sumOf } from "./util.js";

const FIXTURES = process.env.SAVEPOINT_FIXTURES ?? fileURLToPath(new URL("../../../../../shared/fixtures", import.meta.url));

interface ExpectedTensor {
  dtype: string;
  shape: number[];
  sum: number;
  nonfinite?: number;
}
interface ExpectedFile {
  metadata: Record<string, string> | null;
  entries: Record<string, ExpectedTensor>;
}

function findSafetensors(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findSafetensors(p));
    else if (name.endsWith(".safetensors")) out.push(p);
  }
  return out.sort();
}

const expected = JSON.parse(readFileSync(join(FIXTURES, "expected.json"), "utf8")) as Record<string, ExpectedFile>;
const files = findSafetensors(FIXTURES);

describe("safetensors fixtures from real writers", () => {
  it("finds the fixtures", () => {
    expect(files.length).toBeGreaterThanOrEqual(25);
  });

  for (const path of files) {
    const rel = relative(FIXTURES, path).split("\\").join("/");
    it(rel, async () => {
      const want = expected[rel];
      expect(want, `expected.json has no entry for ${rel}`).toBeDefined();
      const src = await fileSource(path);
      try {
        const header = await readSafetensorsHeader(src);
        expect(header.metadata).toEqual(want!.metadata);
        const tensors = lazyTensors(src, header, rel);
        expect([...tensors.keys()].sort()).toEqual(Object.keys(want!.entries).sort());
        for (const [name, t] of tensors) {
          const w = want!.entries[name]!;
          expect(t.dtype, name).toBe(w.dtype);
          expect(t.shape, name).toEqual(w.shape);
          const { sum, nonfinite } = sumOf(await t.data());
          expect(nonfinite, name).toBe(w.nonfinite ?? 0);
          expect(Math.abs(sum - w.sum), `${name}: sum ${sum} vs ${w.sum}`).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(w.sum)));
        }
      } finally {
        await src.close();
      }
    });
  }

  it("returns entries in file order with absolute offsets", async () => {
    const src = await fileSource(join(FIXTURES, "safetensors-samples/overall.safetensors"));
    try {
      const h = await readSafetensorsHeader(src);
      expect(h.dataStart).toBe(8 + 526);
      expect(h.entries[0]!.begin).toBe(h.dataStart);
      for (let i = 1; i < h.entries.length; i++) expect(h.entries[i]!.begin).toBe(h.entries[i - 1]!.end);
      expect(h.entries.at(-1)!.end).toBe(src.size);
    } finally {
      await src.close();
    }
  });
});
