/**
 * Fuzzing the TensorFlow.js manifest parser: generated manifests (right and wrong in every field),
 * arbitrary JSON, and damaged real model.json files either parse into groups whose weights sit
 * back to back, each sized by its shape and stored dtype, or fail with savepoint's errors.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { itemSize } from "../../src/dtype.js";
import { parseTfjsManifest, QUANTIZED_ITEM_SIZE } from "../../src/formats/tfjs/manifest.js";
import { TIMEOUT_MS, corpus, mutated, outcome, params } from "./harness.js";

const seeds = corpus("tfjs");
const decoder = new TextDecoder();

const dim = fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0, max: 8 }) }, { weight: 1, arbitrary: fc.constantFrom(-1, 0.5, 2 ** 53, 2 ** 38, "2", null) });
const quantization = fc.oneof(
  fc.record({ dtype: fc.constantFrom("uint8", "uint16"), min: fc.oneof(fc.double(), fc.constant("0")), scale: fc.double(), original_dtype: fc.option(fc.constantFrom("float32", "int32"), { nil: undefined }) }),
  fc.record({ dtype: fc.constantFrom("float16", "int4", "") }),
  fc.constantFrom(null, [], "uint8"),
);
const weight = fc.oneof(
  { weight: 8, arbitrary: fc.record({ name: fc.oneof(fc.string({ minLength: 1, maxLength: 8 }), fc.constantFrom("__proto__", "a/b", "")), shape: fc.oneof(fc.array(dim, { maxLength: 3 }), fc.constant("x")), dtype: fc.constantFrom("float32", "int32", "bool", "complex64", "string", "float64", "toString"), quantization: fc.option(quantization, { nil: undefined }) }, { requiredKeys: ["name", "shape", "dtype"] }) },
  { weight: 1, arbitrary: fc.anything({ maxDepth: 2 }) },
);
const group = fc.oneof(
  { weight: 8, arbitrary: fc.record({ paths: fc.oneof(fc.array(fc.string({ maxLength: 10 }), { maxLength: 3 }), fc.constant("w.bin")), weights: fc.array(weight, { maxLength: 5 }) }) },
  { weight: 1, arbitrary: fc.anything({ maxDepth: 2 }) },
);
const manifest = fc.record({ format: fc.constantFrom("layers-model", "graph-model"), weightsManifest: fc.oneof({ weight: 9, arbitrary: fc.array(group, { maxLength: 3 }) }, { weight: 1, arbitrary: fc.anything({ maxDepth: 2 }) }), modelTopology: fc.option(fc.jsonValue({ maxDepth: 3 }), { nil: undefined }) }).map((m) => JSON.stringify(m));

const text = fc.oneof(
  { weight: 4, arbitrary: manifest },
  { weight: 2, arbitrary: mutated(seeds).map((b) => decoder.decode(b)) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 100 }) },
);

describe("fuzz: tfjs manifest", () => {
  it("generated, arbitrary and damaged manifests: consistent groups or a savepoint error, within a second", async () => {
    for (const s of seeds) parseTfjsManifest(decoder.decode(s), "seed.json");
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(text, async (t) => {
        const r = await outcome(() => parseTfjsManifest(t, "fuzz/model.json"));
        if ("error" in r) {
          expect(r.error.message).toContain("fuzz/model.json");
          return;
        }
        accepted++;
        const names = new Set<string>();
        for (const g of r.value) {
          let offset = 0;
          for (const w of g.weights) {
            expect(names.has(w.name)).toBe(false);
            names.add(w.name);
            expect(w.offset).toBe(offset);
            const count = w.shape.reduce((a, b) => a * b, 1);
            expect(w.storedBytes).toBe(count * (w.quantization ? QUANTIZED_ITEM_SIZE[w.quantization.dtype] : itemSize(w.dtype)));
            expect(Number.isSafeInteger(count * itemSize(w.dtype))).toBe(true);
            offset += w.storedBytes;
          }
          expect(g.byteLength).toBe(offset);
          expect(g.paths.every((p) => typeof p === "string" && p.length > 0)).toBe(true);
        }
      }),
      params(40_000),
    );
    // The generator must reach the accepting paths too, not only the refusals.
    expect(accepted).toBeGreaterThan(0);
  }, TIMEOUT_MS);
});
