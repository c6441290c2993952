import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Fabric, HostTensor, isStoredTensor, transpose2d, type DType, type StoredTensor } from "../../src/index.js";
import { runPython, skipWithoutTorch } from "../helpers/python.js";
import { mlp, step, tf, tfl, useCpu } from "../helpers/tfjs.js";

// Real PyTorch (Debian's python3-torch) on both sides of the file.
const skip = skipWithoutTorch();
let dir: string;
beforeAll(async () => {
  await useCpu();
  dir = mkdtempSync(join(tmpdir(), "savepoint-torch-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");

/** Python that prints a loaded object as JSON, tensors as dtype/shape/raw little-endian bytes. */
const DUMP = `
import json, sys, torch, collections
def enc(o):
    if isinstance(o, torch.Tensor):
        t = o.detach().contiguous()
        raw = t.view(torch.int16) if t.dtype == torch.bfloat16 else t
        return {"$tensor": str(t.dtype).replace("torch.", ""), "shape": list(t.shape), "hex": raw.numpy().tobytes().hex()}
    if isinstance(o, dict): return {"$dict": type(o).__name__, "items": [[enc(k), enc(v)] for k, v in o.items()]}
    if isinstance(o, tuple): return {"$tuple": [enc(x) for x in o]}
    if isinstance(o, list): return [enc(x) for x in o]
    if isinstance(o, float): return {"$float": repr(o)}
    return o
`;

describe.skipIf(skip)("PyTorch interop", () => {
  it("files we write load in torch.load into the same nested structure, values and dtypes", async () => {
    const fabric = new Fabric();
    const tensors: Record<string, HostTensor> = {};
    const dtypes: DType[] = ["float32", "float64", "float16", "bfloat16", "int8", "int16", "int32", "int64", "uint8", "bool"];
    dtypes.forEach((d, i) => (tensors[d] = HostTensor.fromValues(d, [2, 3], [0, 1, 2, 3, 4, 5].map((x) => (d === "bool" ? x % 2 : x * (i + 1) - 3)))));
    const model = mlp(1);
    const optimizer = tf.train.adam(0.01);
    step(model, optimizer, 0);
    const state = { model, optimizer, tensors, iteration: 12, big: 2n ** 70n, lr: 0.125, name: "naïve ✓", flags: [true, false, null], nested: { a: [1, [2, 3]], b: {} } };
    const path = join(dir, "ours.ckpt");
    await fabric.save(path, state);
    const out = JSON.parse(runPython(`${DUMP}\nobj = torch.load(sys.argv[1])\nprint(json.dumps(enc(obj)))`, [path]));
    const items = Object.fromEntries(out.items.map(([k, v]: [string, unknown]) => [k, v]));
    expect(out.items.map((kv: unknown[]) => kv[0])).toEqual(Object.keys(state));
    expect(items.iteration).toBe(12);
    expect(items.big).toBe(2 ** 70);
    expect(items.lr).toEqual({ $float: "0.125" });
    expect(items.name).toBe("naïve ✓");
    expect(items.flags).toEqual([true, false, null]);
    expect(items.nested).toEqual({ $dict: "dict", items: [["a", [1, [2, 3]]], ["b", { $dict: "dict", items: [] }]] });
    const tens = Object.fromEntries(items.tensors.items);
    for (const d of dtypes) {
      expect(tens[d].$tensor, d).toBe(d);
      expect(tens[d].shape).toEqual([2, 3]);
      expect(tens[d].hex, d).toBe(hex(tensors[d]!.raw));
    }
    expect(items.model.$dict).toBe("OrderedDict");
    const sd = Object.fromEntries(items.model.items);
    expect(sd["dense.kernel"].hex).toBe(hex(new Uint8Array((model.weights[0]!.read().dataSync() as Float32Array).buffer)));
    const opt = Object.fromEntries(items.optimizer.items);
    const st = Object.fromEntries(opt.state.items);
    expect(Object.keys(st)).toEqual(["0", "1", "2", "3"]);
    const s0 = Object.fromEntries(st["0"].items);
    expect(Object.keys(s0)).toEqual(["step", "exp_avg", "exp_avg_sq"]);
    const group = Object.fromEntries(opt.param_groups[0].items);
    expect(group.betas).toEqual({ $tuple: [{ $float: "0.9" }, { $float: "0.999" }] });
    expect(group.params).toEqual([0, 1, 2, 3]);
  });

  it("torch.load(weights_only=True) accepts our files where the installed torch's allow-list permits the values", async () => {
    const fabric = new Fabric();
    const path = join(dir, "weights-only.pt");
    // Debian's torch 1.13 refuses Python floats under weights_only, so this state has none.
    await fabric.save(path, { model: mlp(1), step: 3, tag: "x", ok: true, none: null, ids: [1, 2], t: HostTensor.fromValues("int64", [2], [5, -7]) });
    const out = JSON.parse(runPython(`${DUMP}\nobj = torch.load(sys.argv[1], weights_only=True)\nprint(json.dumps(enc(obj)))`, [path]));
    const items = Object.fromEntries(out.items);
    expect(items.step).toBe(3);
    expect(items.t.hex).toBe(hex(HostTensor.fromValues("int64", [2], [5, -7]).raw));
    expect(items.model.items.map((kv: unknown[]) => kv[0])).toEqual(["dense.kernel", "dense.bias", "dense_1.kernel", "dense_1.bias"]);
  });

  it("files torch writes load here with equal values: every dtype, views of shared storage, non-contiguous tensors, containers", async () => {
    const path = join(dir, "theirs.pt");
    const expected = JSON.parse(
      runPython(
        `${DUMP}
torch.manual_seed(0)
base = torch.arange(24, dtype=torch.float32)
obj = collections.OrderedDict()
for d in [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool]:
    obj[str(d).replace("torch.", "")] = (torch.randn(3, 4) * 50).to(d)
obj["view_a"] = base[2:8]
obj["view_b"] = base.view(4, 6)[1]
obj["transposed"] = torch.randn(3, 5).t()
obj["param"] = torch.nn.Parameter(torch.ones(2, 2))
obj["scalar"] = torch.tensor(3.5)
obj["meta"] = {"epoch": 4, "loss": 0.25, "names": ("a", "b"), "none": None, 7: "int key"}
torch.save(obj, sys.argv[1])
print(json.dumps(enc(obj)))`,
        [path],
      ),
    );
    const fabric = new Fabric();
    const ours = await fabric.load(path);
    expect(Object.keys(ours)).toEqual(expected.items.map((kv: unknown[]) => kv[0]));
    for (const [k, v] of expected.items as [string, { $tensor?: string; shape: number[]; hex: string }][]) {
      if (!v.$tensor) continue;
      const t = ours[k] as StoredTensor;
      expect(isStoredTensor(t), k).toBe(true);
      expect(t.dtype, k).toBe(v.$tensor);
      expect(t.shape, k).toEqual(v.shape);
      expect(hex(await t.bytes()), k).toBe(v.hex);
    }
    const meta = ours.meta as Record<string, unknown>;
    expect(meta.epoch).toBe(4);
    expect(meta.loss).toBe(0.25);
    expect(meta.names).toEqual(["a", "b"]);
    expect(meta.none).toBeNull();
    expect(meta["7"]).toBe("int key");
  });

  it("loadRaw's map brings a PyTorch Linear into a tfjs Dense layer (weight transposed into the kernel)", async () => {
    const path = join(dir, "linear.pt");
    const y = JSON.parse(
      runPython(
        `import json, sys, torch
torch.manual_seed(0)
lin = torch.nn.Linear(4, 3)
torch.save(lin.state_dict(), sys.argv[1])
x = torch.tensor([[1.0, -2.0, 0.5, 3.0], [0.0, 1.0, -1.0, 2.0]])
print(json.dumps(lin(x).tolist()))`,
        [path],
      ),
    );
    const model = tfl.sequential({ layers: [tfl.layers.dense({ units: 3, inputShape: [4], name: "fc" })] });
    const fabric = new Fabric();
    await fabric.loadRaw(path, model, {
      map: async (key, value) => (key === "weight" ? { key: "fc.kernel", value: await transpose2d(value as StoredTensor) } : key === "bias" ? "fc.bias" : null),
    });
    const out = (model.predict(tf.tensor2d([[1, -2, 0.5, 3], [0, 1, -1, 2]])) as tf.Tensor).arraySync() as number[][];
    out.flat().forEach((v, i) => expect(v).toBeCloseTo(y.flat()[i], 5));
  });
});
