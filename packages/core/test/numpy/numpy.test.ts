import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Fabric, HostTensor, isStoredTensor, PyObject, type StoredTensor } from "../../src/index.js";
import { numpyGlobals } from "../../src/formats/numpy/numpy-globals.js";
import { unpickle } from "../../src/formats/pickle/unpickler.js";
import { FIXTURES } from "../helpers/fixtures.js";
import { runPython, skipWithoutTorch } from "../helpers/python.js";

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");

/**
 * Writes one object holding numpy arrays and scalars with torch.save (zip and legacy) and with
 * pickle protocols 2-5, and prints what each array is: dtype, shape, row-major little-endian hex.
 */
const WRITE = `
import json, pickle, sys, numpy as np, torch
d = sys.argv[1]
names = {'float16': 'f2', 'float32': 'f4', 'float64': 'f8', 'int8': 'i1', 'int16': 'i2', 'int32': 'i4', 'int64': 'i8',
         'uint8': 'u1', 'uint16': 'u2', 'uint32': 'u4', 'uint64': 'u8', 'bool': 'b1', 'complex64': 'c8', 'complex128': 'c16'}
base = np.array([[0, 1, -2], [3, -4, 5]])
arrays = {k: (base % 2 == 0) if k == 'bool' else (np.abs(base) if k.startswith('u') else base * 1.5 if k[0] in 'fc' else base).astype(k) for k in names}
obj = {
  'arrays': arrays,
  'fortran': np.asfortranarray(np.arange(24, dtype=np.float32).reshape(2, 3, 4)),
  'fortran_i64': np.asfortranarray(np.arange(6, dtype=np.int64).reshape(3, 2)),
  'big_i4': np.arange(5, dtype='>i4'),
  'big_f8': np.array([[1.5, -2.25], [3.0, 1e-300]], dtype='>f8'),
  'big_c8': np.array([1 + 2j, -3.5j], dtype='>c8'),
  'zero_d': np.array(3.5),
  'empty': np.zeros((0, 3), np.float32),
  'scalars': {'f64': np.float64(0.1), 'f32': np.float32(1.5), 'f16': np.float16(0.5), 'i64': np.int64(-5), 'huge': np.int64(2**62 + 1),
              'u64': np.uint64(2**64 - 1), 'i8': np.int8(-3), 'u16': np.uint16(65535), 'b': np.bool_(True), 'nb': np.bool_(False)},
  'objects': np.array([1, 'a', None], dtype=object),
  'strings': np.array(['ab', 'c']),
  'complex_scalar': np.complex128(1 + 2j),
}
torch.save(obj, d + '/zip.pt')
torch.save(obj, d + '/legacy.pt', _use_new_zipfile_serialization=False)
for p in (2, 3, 4, 5):
    with open(d + '/p%d.pkl' % p, 'wb') as f: pickle.dump(obj, f, protocol=p)
def desc(a):
    return [a.dtype.name if a.dtype.name != 'bool' else 'bool', list(a.shape), np.ascontiguousarray(a).astype(a.dtype.newbyteorder('<')).tobytes().hex()]
out = {'arrays.' + k: desc(v) for k, v in arrays.items()}
for k in ('fortran', 'fortran_i64', 'big_i4', 'big_f8', 'big_c8', 'zero_d', 'empty'): out[k] = desc(obj[k])
print(json.dumps(out))
`;

const skip = skipWithoutTorch();
let dir: string;
let expected: Record<string, [string, number[], string]>;
beforeAll(() => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), "savepoint-numpy-"));
  expected = JSON.parse(runPython(WRITE, [dir]));
});
afterAll(() => dir && rmSync(dir, { recursive: true, force: true }));

function at(tree: unknown, path: string): unknown {
  return path.split(".").reduce<unknown>((v, k) => (v as Record<string, unknown>)[k], tree);
}

async function check(tree: unknown): Promise<void> {
  for (const [path, [dtype, shape, bytes]] of Object.entries(expected)) {
    const t = at(tree, path);
    expect(t, path).toBeInstanceOf(HostTensor);
    expect([(t as StoredTensor).dtype, [...(t as StoredTensor).shape], hex(await (t as StoredTensor).bytes())], path).toEqual([dtype, shape, bytes]);
  }
  const s = at(tree, "scalars") as Record<string, unknown>;
  expect(s).toEqual({ f64: 0.1, f32: 1.5, f16: 0.5, i64: -5, huge: 2n ** 62n + 1n, u64: 2n ** 64n - 1n, i8: -3, u16: 65535, b: true, nb: false });
  // No JS equivalent: kept as inert placeholders with their data.
  for (const k of ["objects", "strings", "complex_scalar"]) expect(at(tree, k), k).toBeInstanceOf(PyObject);
  expect(((at(tree, "objects") as PyObject).state as unknown[])[4]).toEqual([1, "a", null]);
}

describe.skipIf(skip)("numpy arrays and scalars inside pickles (numpy 1.24, torch 1.13)", () => {
  for (const file of ["zip.pt", "legacy.pt"]) {
    it(`torch.save ${file}: every dtype, fortran order, big-endian, 0-d, empty, scalars; also strict`, async () => {
      await check(await new Fabric().load(join(dir, file)));
      await check(await new Fabric({ safe: "strict" }).load(join(dir, file)));
    });
  }
  for (const p of [2, 3, 4, 5]) {
    it(`pickle protocol ${p}`, async () => {
      const numpy = numpyGlobals(`p${p}.pkl`);
      const { value } = unpickle(new Uint8Array(readFileSync(join(dir, `p${p}.pkl`))), { where: `p${p}.pkl`, globals: numpy, safe: "strict" });
      await check(numpy.finish(value));
    });
  }
});

describe("numpy values in real checkpoints", () => {
  it("chemprop v2: numpy scalars in optimizer param groups and arrays in the scheduler", async () => {
    const tree = (await new Fabric().load(`${FIXTURES}/chemprop/example_model_v2_regression_mol.ckpt`)) as Record<string, unknown>;
    expect(at(tree, "optimizer_states.0.param_groups.0.lr")).toBe(0.0007750000000000001);
    const scheds = at(tree, "lr_schedulers.0.scheds") as StoredTensor;
    expect([scheds.dtype, [...scheds.shape], [...(await scheds.data())]]).toEqual(["float64", [1, 4], [0.0001, 0.000325, 0.00055, 0.0007750000000000001]]);
    expect([...(await (at(tree, "lr_schedulers.0.final_lrs") as StoredTensor).data())]).toEqual([0.0001]);
  });

  it("chemprop v1: the data scaler's numpy arrays", async () => {
    const tree = await new Fabric().load(`${FIXTURES}/chemprop/example_model_v1_regression_mol.pt`);
    const means = at(tree, "data_scaler.means");
    expect(isStoredTensor(means)).toBe(true);
    expect([...(await (means as StoredTensor).data())]).toEqual([-3.00043]);
  });

  it("pyannote's legacy optimizer: numpy float64 hyper-parameters", async () => {
    const tree = await new Fabric().load(`${FIXTURES}/pyannote-legacy/2018_softmax_0001.optimizer.pt`);
    expect(at(tree, "param_groups.0.lr")).toBe(2.5223706924328007e-5);
    expect(at(tree, "param_groups.0.momentum")).toBe(0.9400458715596329);
  });
});
