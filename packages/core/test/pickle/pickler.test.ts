import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../src/errors.js";
import { pickle, type ReduceSpec } from "../../src/formats/pickle/pickler.js";
import { unpickle } from "../../src/formats/pickle/unpickler.js";
import { pyStateOf } from "../../src/formats/pickle/py-state.js";
import { asOrderedDict, asTuple, intKeysOf, isOrderedDict, isTuple, PyGlobal, PyObject, withIntKeys } from "../../src/tree/python-values.js";
import { runPython, skipWithoutTorch } from "../helpers/python.js";
import { canon, normalize, PY_CANON } from "./canonical.js";

const ALLOWED = new Set(
  "PROTO STOP GLOBAL REDUCE NEWOBJ BUILD MARK TUPLE TUPLE1 TUPLE2 TUPLE3 EMPTY_TUPLE EMPTY_LIST EMPTY_DICT APPEND APPENDS SETITEM SETITEMS NONE NEWTRUE NEWFALSE BININT BININT1 BININT2 LONG1 BINFLOAT BINUNICODE SHORT_BINSTRING BINPERSID BINPUT LONG_BINPUT BINGET LONG_BINGET".split(
    " ",
  ),
);

/** Loads our pickle in Python; prints canon(value), the opcode names used, and `extra` (a Python expression). */
function pythonLoads(bytes: Uint8Array, extra = "None", setup = ""): { canon: unknown; ops: string[]; extra: unknown } {
  const out = runPython(
    `${PY_CANON}
import pickletools
${setup}
data = base64.b64decode(sys.stdin.read())
class U(pickle.Unpickler):
    def persistent_load(self, pid): return ["PID", pid]
import io
value = U(io.BytesIO(data)).load()
ops = sorted({op.name for op, arg, pos in pickletools.genops(data)})
print(json.dumps({"canon": canon(value), "ops": ops, "extra": ${extra}}))`,
    [],
    Buffer.from(bytes).toString("base64"),
  );
  const r = JSON.parse(out) as { canon: unknown; ops: string[]; extra: unknown };
  return { ...r, canon: normalize(r.canon) };
}

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected an error");
}

function richValue(): Record<string, unknown> {
  const protoKey: Record<string, unknown> = {};
  Object.defineProperty(protoKey, "__proto__", { value: { x: 1 }, enumerable: true, writable: true, configurable: true });
  return {
    none: null,
    t: true,
    f: false,
    ints: [0, 1, -1, 127, 128, 255, 256, 65535, 65536, -2147483648, 2147483647, 2147483648, -2147483649, 2 ** 53 - 1, -(2 ** 53 - 1), 2 ** 60, 1e300],
    bigints: [0n, 1n, -1n, 127n, 128n, -128n, -129n, 255n, 2n ** 64n, -(2n ** 64n), 10n ** 40n, -(10n ** 40n), 2n ** 2000n, -(2n ** 2039n)],
    floats: [1.5, -2.25, 0.1, -0, NaN, Infinity, -Infinity, 5e-324, Number.MAX_VALUE],
    strs: ["", "ascii", "é ü 中文 😀", "line\nbreak\\back'quote\"", "\0\x1a\r", "x".repeat(70000)],
    bytes: [new Uint8Array(0), Uint8Array.from({ length: 256 }, (_, i) => i), new Uint8Array([0x80, 0xfe])],
    tuple: asTuple([1, asTuple([2, 3]), asTuple([]), asTuple(["a"]), asTuple([1, 2, 3, 4])]),
    list: [[[[]]], { x: [{ y: asTuple([]) }] }],
    set: new Set([1, "two", asTuple([3, 4])]),
    intkeys: withIntKeys({ 0: "zero", 1: withIntKeys({ 2: "two" }), "-7": "neg", "1180591620717411303424": "big", name: "str key" }),
    map: new Map<unknown, unknown>([
      [asTuple([1, 2]), "tuple key"],
      [null, "none key"],
      [1.5, "float key"],
      [7, "int key"],
      ["7", "str key"],
      [true, "bool key"],
      [2n ** 70n, "bigint key"],
    ]),
    odict: asOrderedDict({ b: 1, a: [1, 2] }),
    odictMap: asOrderedDict(new Map<unknown, unknown>([[asTuple([1]), 1]])),
    protoKey,
    longList: Array.from({ length: 2500 }, (_, i) => i),
    bigDict: Object.fromEntries(Array.from({ length: 2500 }, (_, i) => [`k${i}`, i])),
    oneItem: [5],
    oneKey: { k: 5 },
    global: new PyGlobal("builtins", "len"),
  };
}

describe("pickle: read back by Python", () => {
  it("writes every value kind so that pickle.loads gives the same value", () => {
    const value = richValue();
    const r = pythonLoads(pickle(value));
    expect(r.canon).toEqual(canon(value, true));
  });

  it("writes only the opcodes torch.load(weights_only=True) accepts", () => {
    const value = {
      ...richValue(),
      obj: new PyObject("argparse", "Namespace", [], { a: 1 }),
      shared: (() => {
        const a = [1];
        return [a, a, a];
      })(),
    };
    const r = pythonLoads(pickle(value));
    for (const op of r.ops) expect(ALLOWED.has(op), op).toBe(true);
    expect(r.ops).toContain("BINGET");
    expect(r.ops).toContain("APPENDS");
    expect(r.ops).toContain("SETITEMS");
  });

  it("batches APPENDS and SETITEMS by 1000", () => {
    const out = runPython(
      `import sys, base64, pickletools, json
data = base64.b64decode(sys.stdin.read())
print(json.dumps([op.name for op, a, p in pickletools.genops(data)]))`,
      [],
      Buffer.from(pickle([Array.from({ length: 2001 }, (_, i) => i), Object.fromEntries(Array.from({ length: 2500 }, (_, i) => [`k${i}`, i]))])).toString("base64"),
    );
    const ops = JSON.parse(out) as string[];
    expect(ops.filter((o) => o === "APPENDS").length).toBe(3); // 1000 + 1000 + outer list [a, b]
    expect(ops.filter((o) => o === "APPEND").length).toBe(1); // the 2001st
    expect(ops.filter((o) => o === "SETITEMS").length).toBe(3);
  });

  it("writes shared objects once and recalls them from the memo", () => {
    const a = [1, 2];
    const t = asTuple(["x"]);
    const many = Array.from({ length: 300 }, (_, i) => ({ i }));
    const value = [a, a, t, t, ...many, ...many];
    const r = pythonLoads(pickle(value), "[value[0] is value[1], value[2] is value[3], all(value[4 + i] is value[304 + i] for i in range(300))]");
    expect(r.extra).toEqual([true, true, true]);
    const back = unpickle(pickle(value), { where: "x" }).value as unknown[];
    expect(back[0]).toBe(back[1]);
    expect(back[4]).toBe(back[304]);
    expect(back[303]).toBe(back[603]);
  });

  it("splices memo PUTs correctly across output chunks", () => {
    const parts: unknown[] = [];
    const shared = Array.from({ length: 8 }, (_, i) => ({ i }));
    for (let i = 0; i < 8; i++) parts.push("z".repeat(50_000 + i * 7919), shared[i], new Uint8Array(40_000).fill(i), shared[i]);
    const bytes = pickle(parts);
    const r = pythonLoads(bytes, "all(value[4*i+1] is value[4*i+3] and value[4*i+1] == {'i': i} for i in range(8))");
    expect(r.extra).toBe(true);
    expect(r.canon).toEqual(canon(parts, true));
  });

  it("writes PyObject with args, items, entries and state; NEWOBJ for instances read via __new__", () => {
    const value = [
      new PyObject("fractions", "Fraction", [1, 3]),
      new PyObject("argparse", "Namespace", [], { a: 1, b: "two" }),
      Object.assign(new PyObject("collections", "deque", [[1, 2]]), { items: [3, 4] }),
      Object.assign(new PyObject("collections", "Counter", []), { entries: [["x", 2], ["y", 3]] as [unknown, unknown][] }),
    ];
    const r = pythonLoads(pickle(value), "[repr(x) for x in value]");
    expect(r.extra).toEqual(["Fraction(1, 3)", "Namespace(a=1, b='two')", "deque([1, 2, 3, 4])", "Counter({'y': 3, 'x': 2})"]);

    // A class whose __init__ needs arguments, read from Python, round-trips through NEWOBJ + BUILD.
    const setup = `
class Point:
    def __init__(self, x, y): self.x, self.y = x, y`;
    const src = runPython(`${setup}\nimport pickle, base64\nprint(base64.b64encode(pickle.dumps(Point(1, "a"), protocol=2)).decode())`);
    const point = unpickle(new Uint8Array(Buffer.from(src.trim(), "base64")), { where: "p" }).value;
    expect(pythonLoads(pickle(point), "[value.x, value.y]", setup).extra).toEqual([1, "a"]);
  });

  it("consults persistentId and reduce first, for every value", () => {
    class Tensor {
      constructor(readonly key: string) {}
    }
    class Storage {
      constructor(readonly key: string) {}
    }
    const t = new Tensor("0");
    const calls: unknown[] = [];
    const bytes = pickle(
      { w: t, tied: t, n: 5 },
      {
        persistentId: (v) => (v instanceof Storage ? asTuple(["storage", new PyGlobal("builtins", "float"), v.key, "cpu", 4]) : undefined),
        reduce: (v): ReduceSpec | undefined => {
          calls.push(v);
          if (v === 5) return { module: "builtins", name: "int", args: ["6"] };
          return v instanceof Tensor ? { module: "builtins", name: "list", args: [[new Storage(v.key), 1]], state: undefined } : undefined;
        },
      },
    );
    // persistent_load gives ["PID", pid]
    const r = pythonLoads(bytes, "[value['w'] is value['tied'], value['n'], value['w'][0][0], value['w'][0][1][2:], value['w'][0][1][1] is float]");
    expect(r.extra).toEqual([true, 6, "PID", ["0", "cpu", 4], true]);
    expect(calls.filter((c) => c === t).length).toBe(1);
  });

  it("keeps an OrderedDict's attributes (torch's _metadata) beside its keys and writes them back", () => {
    const src = runPython(`
import pickle, base64, collections
od = collections.OrderedDict(w=1)
od._metadata = collections.OrderedDict([("", {"version": 1})])
print(base64.b64encode(pickle.dumps(od, protocol=2)).decode())`);
    const sd = unpickle(new Uint8Array(Buffer.from(src.trim(), "base64")), { where: "sd" }).value as Record<string, unknown>;
    expect(Object.keys(sd)).toEqual(["w"]);
    expect(pyStateOf(sd)).toEqual({ _metadata: { "": { version: 1 } } });
    const r = pythonLoads(pickle(sd), "[list(value.items()), value._metadata]");
    expect(r.extra).toEqual([[["w", 1]], { "": { version: 1 } }]);
  });

  it("round-trips through our own unpickler with marks intact", () => {
    const value = richValue();
    const back = unpickle(pickle(value), { where: "rt" }).value as Record<string, unknown>;
    expect(canon(back, true)).toEqual(canon(value, true));
    expect(isTuple(back.tuple)).toBe(true);
    expect(isOrderedDict(back.odict)).toBe(true);
    expect([...intKeysOf(back.intkeys as object)].sort()).toEqual(["-7", "0", "1", "1180591620717411303424"]);
    expect(back.map).toBeInstanceOf(Map);
    expect(Object.hasOwn(back.protoKey as object, "__proto__")).toBe(true);
  });
});

describe("pickle: errors name the key path", () => {
  const cases: [string, unknown, RegExp][] = [
    ["undefined", { a: { b: undefined } }, /cannot save undefined at a\.b.*use null/],
    ["a function", { state: { hparams: { fn: () => 1 } } }, /cannot save a function \(fn\) at state\.hparams\.fn/],
    ["a class instance", { list: [1, new Date(0)] }, /cannot save an instance of Date at list\[1\]/],
    ["a Float32Array", { w: new Float32Array(2) }, /an instance of Float32Array at w/],
    ["a symbol", [Symbol("s")], /a symbol at \[0\]/],
    ["a lone surrogate", { s: "a\ud800b" }, /string at s contains a lone UTF-16 surrogate/],
    ["a lone surrogate key", { "\udc00": 1 }, /lone UTF-16 surrogate/],
    ["a huge bigint", { n: 2n ** 2039n }, /integer at n needs more than 255 bytes/],
    ["an unhashable key", { m: new Map([[[1], 2]]) }, /dict at m has a key or item that is a list/],
    ["an unhashable set item", { s: new Set([{}]) }, /set at s has a key or item that is a dict/],
  ];
  for (const [what, value, message] of cases) {
    it(`refuses ${what}`, () => {
      const err = errorOf(() => pickle(value, { where: "model.ckpt" }));
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect(err.message).toMatch(/^\[savepoint\] model\.ckpt: /);
      expect(err.message).toMatch(message);
    });
  }

  it("refuses cycles, naming where the cycle closes", () => {
    const a: Record<string, unknown> = { x: [] };
    (a.x as unknown[]).push({ back: a });
    const err = errorOf(() => pickle({ root: a }));
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toMatch(/value at root\.x\[0\]\.back contains itself/);
  });

  it("handles 100,000-deep nesting without recursion", () => {
    let v: unknown[] = [];
    for (let i = 0; i < 100_000; i++) v = [v];
    const bytes = pickle(v);
    expect(bytes.length).toBeGreaterThan(200_000);
    expect(() => unpickle(bytes, { where: "deep" })).toThrow(/deeper than 1000/);
  });
});

describe("pickle: torch interop", () => {
  it.skipIf(skipWithoutTorch())("is accepted by torch's weights_only unpickler", () => {
    const value = {
      state_dict: asOrderedDict({ "layer.0.weight": [1, 2, 3], "layer.0.bias": asTuple([4, -5]) }),
      optimizer: { state: withIntKeys({ 0: { step: 10 } }), param_groups: [{ params: [0, 1], name: "adam", amsgrad: false, x: null }] },
      epoch: 3,
      big: 2n ** 70n,
      shared: (() => {
        const a = { k: "v" };
        return [a, a];
      })(),
    };
    const out = runPython(
      `import sys, io, base64, torch._weights_only_unpickler as w
v = w.Unpickler(io.BytesIO(base64.b64decode(sys.stdin.read()))).load()
print(repr(v))`,
      [],
      Buffer.from(pickle(value)).toString("base64"),
    );
    expect(out.trim()).toBe(
      "{'state_dict': OrderedDict([('layer.0.weight', [1, 2, 3]), ('layer.0.bias', (4, -5))]), 'optimizer': {'state': {0: {'step': 10}}, 'param_groups': [{'params': [0, 1], 'name': 'adam', 'amsgrad': False, 'x': None}]}, 'epoch': 3, 'big': 1180591620717411303424, 'shared': [{'k': 'v'}, {'k': 'v'}]}",
    );
  });
});
