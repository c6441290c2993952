import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runPython, skipWithoutTorch } from "../../core/test/helpers/python.js";
import { launchTraining, reports, requireBuilt } from "./helpers.js";

const skip = skipWithoutTorch();
let dir: string;
beforeAll(() => {
  requireBuilt();
  dir = mkdtempSync(join(tmpdir(), "savepoint-ddp-torch-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(skip)("DDP checkpoints and PyTorch", () => {
  it("a checkpoint written by a two-rank DDP run loads with torch.load, holding rank 0's replica", async () => {
    const ckpt = join(dir, "ddp.ckpt");
    const first = await launchTraining(2, "first", ckpt, join(dir, "first"));
    expect(first.code, first.stderr).toBe(0);
    const out = JSON.parse(
      runPython(
        `import json, sys, torch
d = torch.load(sys.argv[1])
print(json.dumps({"keys": list(d.keys()), "iteration": d["iteration"], "hparams": d["hparams"],
  "model": {k: [list(v.shape), str(v.dtype), float(v.double().sum())] for k, v in d["model"].items()},
  "optimizer": sorted(d["optimizer"].keys())}))`,
        [ckpt],
      ),
    );
    expect(out.keys).toEqual(["model", "optimizer", "iteration", "hparams"]);
    expect(out.iteration).toBe(10);
    expect(out.hparams).toEqual({ optimizer: "adam", worldSize: 2 });
    expect(out.model["dense.kernel"].slice(0, 2)).toEqual([[4, 16], "torch.float32"]);
    expect(out.model["dense_1.bias"].slice(0, 2)).toEqual([[3], "torch.float32"]);
    expect(out.optimizer).toEqual(["param_groups", "state"]);
  });

  it("a file written by torch.save in one Python process loads into every rank of a two-rank DDP run", async () => {
    const file = join(dir, "from-torch.pt");
    runPython(
      `import sys, torch
g = torch.Generator().manual_seed(0)
model = {"dense.kernel": torch.randn(4, 16, generator=g), "dense.bias": torch.randn(16, generator=g),
         "dense_1.kernel": torch.randn(16, 3, generator=g), "dense_1.bias": torch.randn(3, generator=g)}
torch.save({"model": model, "iteration": 42}, sys.argv[1])
import json; print(json.dumps({k: v.flatten().tolist() for k, v in model.items()}))`,
      [file],
    );
    const expected = JSON.parse(runPython(`import sys, torch, json\nd = torch.load(sys.argv[1])\nprint(json.dumps({k: v.flatten().tolist() for k, v in d["model"].items()}))`, [file]));
    const out = join(dir, "load");
    const exit = await launchTraining(2, "load", file, out);
    expect(exit.code, exit.stderr).toBe(0);
    const r = reports(out);
    for (const rank of [0, 1]) {
      expect(r[rank]!.iteration).toBe(42);
      const w = r[rank]!.weights as number[][];
      expect(w).toEqual(["dense.kernel", "dense.bias", "dense_1.kernel", "dense_1.bias"].map((k) => (expected[k] as number[]).map(Math.fround)));
    }
  });
});
