import { describe, expect, it } from "vitest";
import { unpickle, type GlobalHandler } from "../../src/formats/pickle/unpickler.js";
import { intKeysOf, isOrderedDict, isTuple, PyGlobal, PyObject } from "../../src/tree/python-values.js";
import { isNewObj } from "../../src/formats/pickle/newobj-mark.js";
import { runPython } from "../helpers/python.js";
import { canon, normalize, PY_CANON } from "./canonical.js";

const where = "test.pkl";
const load = (b: Uint8Array, extra: Partial<Parameters<typeof unpickle>[1]> = {}): unknown =>
  unpickle(b, { where, ...extra }).value;
const b64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "base64"));

/** Pickles the Python expression `expr` with every protocol; returns canon + bytes per protocol. */
function fromPython(setup: string, protocols = [0, 1, 2, 3, 4, 5], withCanon = true): { canon: unknown; pickles: Uint8Array[] } {
  const out = runPython(
    `${PY_CANON}
${setup}
print(json.dumps({"canon": ${withCanon ? "canon(value)" : "None"}, "pickles": [base64.b64encode(pickle.dumps(value, protocol=p)).decode() for p in ${JSON.stringify(protocols)}]}))`,
  );
  const parsed = JSON.parse(out) as { canon: unknown; pickles: string[] };
  return { canon: normalize(parsed.canon), pickles: parsed.pickles.map(b64) };
}

describe("unpickle: values written by Python's pickle", () => {
  const rich = fromPython(`
from collections import OrderedDict
value = {
    "none": None, "t": True, "f": False,
    "ints": [0, 1, -1, 127, 128, 255, 256, 65535, 65536, -2**31, 2**31 - 1, 2**31, -2**31 - 1,
             2**53 - 1, -(2**53 - 1), 2**53, 2**63, -2**64 - 5, 10**40, -(10**40), 2**2000],
    "floats": [0.0, -0.0, 1.5, -2.25, 1e300, 5e-324, float("inf"), float("-inf"), float("nan"), 0.1],
    "strs": ["", "ascii", "é ü 中文 😀", "line\\nbreak\\\\back'quote\\"", "\\x00\\x1a\\r", "__proto__", "x" * 70000, "\ud800x\udfff", "\U0010ffff"],
    "bytes": [b"", bytes(range(256)), bytearray(b"\\x80\\xfe")],
    "tuple": (1, (2, 3), (), ("a",), (1, 2, 3, 4)),
    "set": {1, "two", (3, 4)},
    "frozenset": frozenset({5, 6}),
    "intkeys": {0: "zero", 1: {2: "two"}, -7: "neg", 2**70: "big"},
    "tuplekeys": {(1, 2): "a", (3,): "b"},
    "mixedkeys": {"1": "str one", 1: "int one"},
    "otherkeys": {None: 1, 1.5: 2, True: 3},
    "odict": OrderedDict([("b", 1), ("a", [1, 2]), (3, "int")]),
    "odict_tuplekeys": OrderedDict([((1,), 1)]),
    "nested": [[[[]]], {"x": [{"y": ()}]}],
    "__proto__": {"polluted": True},
    "long_list": list(range(2500)),
    "big_dict": {f"k{i}": i for i in range(2500)},
}`);
  rich.pickles.forEach((bytes, proto) => {
    it(`decodes every value kind (protocol ${proto})`, () => {
      const value = load(bytes);
      expect(canon(value)).toEqual(rich.canon);
    });
  });

  it("marks tuples, int keys and OrderedDicts, and keeps __proto__ an own key", () => {
    const v = load(rich.pickles[2] as Uint8Array) as Record<string, unknown>;
    expect(isTuple(v.tuple)).toBe(true);
    expect(isTuple(v.ints)).toBe(false);
    expect([...intKeysOf(v.intkeys as object)].sort()).toEqual(["-7", "0", "1", String(2n ** 70n)]);
    expect(isOrderedDict(v.odict)).toBe(true);
    expect(v.tuplekeys).toBeInstanceOf(Map);
    expect(v.mixedkeys).toBeInstanceOf(Map);
    expect(isOrderedDict(v.odict_tuplekeys)).toBe(true);
    expect(v.odict_tuplekeys).toBeInstanceOf(Map);
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(Object.hasOwn(v, "__proto__")).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(v.bytes && (v.bytes as unknown[])[1]).toBeInstanceOf(Uint8Array);
    expect(((v.ints as unknown[])[18] as bigint) === 10n ** 40n).toBe(true);
    expect(typeof (v.ints as unknown[])[13]).toBe("number");
  });

  it("keeps shared references and cycles", () => {
    const r = fromPython(`
a = [1]
d = {}
d["self"] = d
cyc = []
cyc.append(cyc)
value = [a, a, cyc, d]`, [0, 2, 4], false);
    for (const bytes of r.pickles) {
      const v = load(bytes) as unknown[];
      expect(v[0]).toBe(v[1]);
      const cyc = v[2] as unknown[];
      expect(cyc[0]).toBe(cyc);
      const d = v[3] as Record<string, unknown>;
      expect(d.self).toBe(d);
    }
  });

  it("swaps a dict that became a Map everywhere it was already referenced", () => {
    const r = fromPython(`
d = {"a": 1}
d[(1, 2)] = d
value = [d, d]`, [2, 4], false);
    for (const bytes of r.pickles) {
      const v = load(bytes) as unknown[];
      const m = v[0] as Map<unknown, unknown>;
      expect(m).toBeInstanceOf(Map);
      expect(v[1]).toBe(m);
      const selfRef = [...m.entries()].find(([k]) => Array.isArray(k))?.[1];
      expect(selfRef).toBe(m);
    }
  });

  it("keeps instances of unknown classes as inert PyObjects", () => {
    const r = runPython(`
import pickle, base64, json
class Point:
    def __init__(self, x, y): self.x, self.y = x, y
class MyList(list): pass
class MyDict(dict): pass
class MyInt(int): pass
p = Point(1, "a")
l = MyList([1, 2]); l.tag = "L"
d = MyDict(k=3)
value = [p, l, d, MyInt(7)]
print(json.dumps([base64.b64encode(pickle.dumps(value, protocol=i)).decode() for i in range(6)]))`);
    (JSON.parse(r) as string[]).forEach((s, proto) => {
      const [p, l, d, n] = load(b64(s)) as PyObject[];
      expect(p).toBeInstanceOf(PyObject);
      expect([p!.module, p!.name]).toEqual(["__main__", "Point"]);
      expect(p!.state).toEqual({ x: 1, y: "a" });
      expect(isNewObj(p!)).toBe(true);
      expect(l!.name).toBe("MyList");
      expect(l!.items).toEqual([1, 2]);
      expect(l!.state).toEqual({ tag: "L" });
      expect(d!.entries).toEqual([["k", 3]]);
      expect(n!.name).toBe("MyInt");
      expect(n!.args, `protocol ${proto}`).toEqual([7]);
    });
  });

  it("passes persistent ids to persistentLoad, and calls allow-listed handlers", () => {
    const r = runPython(`
import pickle, io, base64
class Marker: pass
class P(pickle.Pickler):
    def persistent_id(self, obj):
        return ("storage", "key0", 3) if isinstance(obj, Marker) else None
for proto in (0, 2):
    f = io.BytesIO(); P(f, protocol=proto).dump({"w": Marker()}); print(base64.b64encode(f.getvalue()).decode())
`).trim().split("\n");
    for (const s of r.slice(1)) {
      const pids: unknown[] = [];
      const v = load(b64(s), { persistentLoad: (pid) => (pids.push(pid), "LOADED") }) as Record<string, unknown>;
      expect(v.w).toBe("LOADED");
      expect(pids).toEqual([["storage", "key0", 3]]);
      expect(isTuple(pids[0])).toBe(true);
    }
    // protocol 0 writes PERSID with a text id
    const pids: unknown[] = [];
    load(b64(r[0] as string), { persistentLoad: (pid) => (pids.push(pid), null) });
    expect(pids).toEqual(["('storage', 'key0', 3)"]);
    expect(() => load(b64(r[1] as string))).toThrow(/persistent id/);
  });

  it("consults the globals option before the built-ins", () => {
    const r = runPython(`
import pickle, base64, fractions, collections
print(base64.b64encode(pickle.dumps([fractions.Fraction(1, 3), collections.OrderedDict(a=1)], protocol=2)).decode())`);
    const seen: string[] = [];
    const globals = (module: string, name: string): GlobalHandler | undefined => {
      seen.push(`${module}.${name}`);
      if (name === "Fraction") return { call: (args) => `frac(${args.join(",")})` };
      return undefined;
    };
    const v = load(b64(r.trim()), { globals, safe: "strict" }) as unknown[];
    expect(v[0]).toBe("frac(1,3)");
    expect(v[1]).toEqual({ a: 1 });
    expect(seen).toEqual(["fractions.Fraction", "collections.OrderedDict"]);
  });

  it("reads consecutive pickles using the returned end offset", () => {
    const r = runPython(`
import pickle, base64
print(base64.b64encode(pickle.dumps(123, protocol=2) + pickle.dumps("two", protocol=2) + b"tail").decode())`);
    const bytes = b64(r.trim());
    const a = unpickle(bytes, { where });
    const b = unpickle(bytes, { where }, a.end);
    expect([a.value, b.value]).toEqual([123, "two"]);
    expect(b.end).toBe(bytes.length - 4);
  });

  it("accepts nesting up to maxDepth and refuses deeper", () => {
    const r = runPython(`
import pickle, base64
v = []
for _ in range(499): v = [v]
print(base64.b64encode(pickle.dumps(v, protocol=2)).decode())`);
    const bytes = b64(r.trim());
    expect(Array.isArray(load(bytes))).toBe(true);
    expect(() => load(bytes, { maxDepth: 499 })).toThrow(/nests containers deeper than 499/);
    expect(Array.isArray(load(bytes, { maxDepth: 500 }))).toBe(true);
  });
});

describe("unpickle: Python 2 pickles", () => {
  const py2 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "latin1"));

  it("maps __builtin__ / copy_reg and decodes SHORT_BINSTRING as UTF-8 or latin-1", () => {
    // set([u'abc', 'é' (UTF-8), '\xff' (latin-1)]) as Python 2 writes it
    const bytes = py2("\x80\x02c__builtin__\nset\nq\x00]q\x01(U\x03abcU\x02\xc3\xa9U\x01\xffe\x85q\x02Rq\x03.");
    expect(load(bytes, { safe: "strict" })).toEqual(new Set(["abc", "é", "ÿ"]));
  });

  it("reads protocol 0 text opcodes: S, V, I, L, F, p/g, dict and list", () => {
    const bytes = py2(
      "(dp0\nS'name'\np1\nS'caf\\xc3\\xa9 \\'q\\' \\n'\np2\nsS'u'\nVsnow \\u2603 \\U0001f600\np3\nsS'i'\n" +
        "(lp4\nI01\naI00\naI-42\naL123456789012345678901234567890L\naF1.5\naFnan\naF-inf\nasS'r'\ng2\ns.",
    );
    const v = load(bytes) as Record<string, unknown[]>;
    expect(v.name).toBe("café 'q' \n");
    expect(v.u).toBe("snow ☃ 😀");
    expect(v.r).toBe(v.name);
    const i = v.i as unknown[];
    expect(i.slice(0, 3)).toEqual([true, false, -42]);
    expect(i[3]).toBe(123456789012345678901234567890n);
    expect(i[4]).toBe(1.5);
    expect(Number.isNaN(i[5])).toBe(true);
    expect(i[6]).toBe(-Infinity);
  });

  it("restores protocol 1 copy_reg._reconstructor instances and BINSTRING", () => {
    const bytes = py2(
      "ccopy_reg\n_reconstructor\nq\x00(cmymod\nThing\nq\x01c__builtin__\nobject\nq\x02Ntq\x03Rq\x04}q\x05T\x03\x00\x00\x00keyq\x06K\x07sb.",
    );
    const v = load(bytes) as PyObject;
    expect(v).toBeInstanceOf(PyObject);
    expect([v.module, v.name, v.args]).toEqual(["mymod", "Thing", []]);
    expect(v.state).toEqual({ key: 7 });
    expect(() => load(bytes, { safe: "strict" })).toThrow(/mymod\.Thing/);
  });

  it("reads INST and OBJ", () => {
    const inst = load(py2("(I1\nI2\nimymod\nCls\n.")) as PyObject;
    expect([inst.module, inst.name, inst.args]).toEqual(["mymod", "Cls", [1, 2]]);
    const obj = load(py2("(cmymod\nCls\nK\x05o.")) as PyObject;
    expect(obj.args).toEqual([5]);
  });
});
