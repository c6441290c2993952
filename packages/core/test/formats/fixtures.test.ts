import { describe, expect, it } from "vitest";
import { Fabric, isStoredTensor } from "../../src/index.js";
import { closeTo, FIXTURES, flatten, loadExpected, summarize, type ExpectedTensor } from "../helpers/fixtures.js";
import "@tensorflow/tfjs-backend-cpu";

const expected = loadExpected();
const files = Object.keys(expected).filter((f) => /\.(pt|pth|ckpt|safetensors)$/.test(f));
/** Lightning's meta.pt inside a DCP folder: its entries must show at the top of the folder's load. */
const DCP_META = /^(.*\.ckpt)\/meta\.pt$/;
/**
 * expected.json wrote null for numpy scalars (torch returned np.float64); savepoint reads them as
 * numbers. These are the values torch 1.13 gives.
 */
const NUMPY_SCALARS: Record<string, Record<string, number>> = {
  "pyannote-legacy/2018_softmax_0001.optimizer.pt": { "param_groups.0.lr": 2.5223706924328007e-5, "param_groups.0.momentum": 0.9400458715596329 },
};

describe("every torch (zip and legacy), DCP and safetensors fixture loads and matches expected.json", () => {
  const fabric = new Fabric();
  it("covers the fixture set", () => {
    expect(files.length).toBeGreaterThan(60);
  });
  for (const file of files) {
    it(file, async () => {
      const exp = expected[file]!;
      const tree = await fabric.load(`${FIXTURES}/${file.replace(DCP_META, "$1")}`);
      const flat = flatten(tree);
      if (exp.refused) {
        // torch refused the file; its entries came from stubbed globals, whose paths differ from
        // our inert placeholders'. Every expected tensor must still be found among ours.
        const ours = await Promise.all([...flat.values()].filter(isStoredTensor).map(summarize));
        for (const [path, e] of Object.entries(exp.entries ?? {})) {
          if (!("dtype" in e)) continue;
          const hit = ours.findIndex((o) => o.dtype === e.dtype && o.shape.join() === e.shape.join() && o.nonfinite === (e.nonfinite ?? 0) && closeTo(o.sum, e.sum));
          expect(hit, `tensor ${path} ${e.dtype}[${e.shape}] sum ${e.sum}`).toBeGreaterThanOrEqual(0);
          ours.splice(hit, 1);
        }
        return;
      }
      for (const [path, e] of Object.entries(exp.entries)) {
        expect(flat.has(path), `${path} present`).toBe(true);
        const got = flat.get(path);
        if ("dtype" in e) {
          expect(isStoredTensor(got), `${path} is a tensor`).toBe(true);
          const s = await summarize(got as never);
          const t = e as ExpectedTensor;
          expect(s.dtype, path).toBe(t.dtype);
          expect(s.shape, path).toEqual(t.shape);
          expect(s.nonfinite, path).toBe(t.nonfinite ?? 0);
          expect(closeTo(s.sum, t.sum), `${path}: sum ${s.sum} vs ${t.sum}`).toBe(true);
        } else {
          const v = typeof got === "bigint" ? Number(got) : got;
          expect(v, path).toEqual(NUMPY_SCALARS[file]?.[path] ?? e.value);
        }
      }
    });
  }
});
