import { existsSync, rmSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  CorruptCheckpointError,
  SavepointError,
  UnsafeCheckpointError,
  UnsupportedFormatError,
} from "../../src/errors.js";
import { unpickle } from "../../src/formats/pickle/unpickler.js";
import { PyGlobal, PyObject } from "../../src/tree/python-values.js";
import { runPython } from "../helpers/python.js";

const where = "evil.pkl";
const bin = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "latin1"));
const load = (b: Uint8Array, extra: Partial<Parameters<typeof unpickle>[1]> = {}): unknown =>
  unpickle(b, { where, ...extra }).value;

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected an error");
}

describe("unpickle: hostile input", () => {
  const marker = "/tmp/savepoint-pickle-pwned";

  it("keeps GLOBAL os system + REDUCE inert; strict mode refuses it", () => {
    rmSync(marker, { force: true });
    const bytes = bin(`cos\nsystem\n(S'touch ${marker}'\ntR.`);
    const v = load(bytes) as PyObject;
    expect(v).toBeInstanceOf(PyObject);
    expect([v.module, v.name, v.args]).toEqual(["os", "system", [`touch ${marker}`]]);
    expect(existsSync(marker)).toBe(false);
    const err = errorOf(() => load(bytes, { safe: "strict" }));
    expect(err).toBeInstanceOf(UnsafeCheckpointError);
    expect(err.message).toMatch(/^\[savepoint\] evil\.pkl: .*os\.system/);
  });

  it("keeps __reduce__ payloads written by Python inert (posix.system, eval, getattr, subprocess.Popen)", () => {
    const out = runPython(`
import pickle, base64, os, subprocess, builtins
class A:
    def __reduce__(self): return (os.system, ("touch ${marker}",))
class B:
    def __reduce__(self): return (builtins.eval, ("__import__('os').system('touch ${marker}')",))
class C:
    def __reduce__(self): return (subprocess.Popen, (["touch", "${marker}"],))
class D:
    def __reduce__(self): return (getattr, (subprocess.Popen, "wait"))
for p in (0, 2, 4):
    print(base64.b64encode(pickle.dumps([A(), B(), C(), D()], protocol=p)).decode())`);
    for (const line of out.trim().split("\n")) {
      const bytes = new Uint8Array(Buffer.from(line, "base64"));
      const [a, b, c, d] = load(bytes) as PyObject[];
      expect([a!.module, a!.name]).toEqual(["posix", "system"]);
      expect([b!.module, b!.name]).toEqual(["builtins", "eval"]);
      expect([c!.module, c!.name]).toEqual(["subprocess", "Popen"]);
      expect([d!.module, d!.name]).toEqual(["builtins", "getattr"]);
      expect(d!.args[0]).toBeInstanceOf(PyGlobal);
      expect(existsSync(marker)).toBe(false);
      const err = errorOf(() => load(bytes, { safe: "strict" }));
      expect(err).toBeInstanceOf(UnsafeCheckpointError);
      expect(err.message).toContain("posix.system");
    }
  });

  it("survives a memo bomb (LONG_BINPUT 0xFFFFFFFF) without allocating", () => {
    const v = load(bin("\x80\x02Nr\xff\xff\xff\xff0j\xff\xff\xff\xff."));
    expect(v).toBeNull();
    expect(() => load(bin("\x80\x02j\xfe\xff\xff\xff."))).toThrow(/memo entry 4294967294 is read before it was written/);
  });

  it("refuses a stack bomb of marks, and stops at the end of a run of pushes", () => {
    const marks = errorOf(() => load(bin("\x80\x02" + "(".repeat(200_000) + ".")));
    expect(marks).toBeInstanceOf(UnsupportedFormatError);
    expect(marks.message).toMatch(/deeper than 1000/);
    const pushes = errorOf(() => load(bin("\x80\x02" + "N".repeat(1_000_000))));
    expect(pushes).toBeInstanceOf(CorruptCheckpointError);
    expect(pushes.message).toMatch(/truncated/);
  });

  it("refuses 100,000-deep nesting built with MARK", () => {
    const err = errorOf(() => load(bin("\x80\x02" + "](".repeat(100_000) + "e".repeat(100_000) + ".")));
    expect(err).toBeInstanceOf(UnsupportedFormatError);
    expect(err.message).toMatch(/deeper than 1000/);
  });

  it("refuses 100,000-deep nesting built with APPEND (no MARK at all)", () => {
    const err = errorOf(() => load(bin("\x80\x02" + "]".repeat(100_000) + "a".repeat(99_999) + ".")));
    expect(err).toBeInstanceOf(UnsupportedFormatError);
    expect(err.message).toMatch(/^\[savepoint\] evil\.pkl: .*deeper than 1000/);
  });

  it("refuses deep nesting built by appending into memoised lists after the fact", () => {
    // L0 = [] ; then repeatedly: Lnext = [], PUT, GET Lprev, GET Lnext, APPEND, POP -> Lprev[0] = Lnext
    let s = "\x80\x02]r\x00\x00\x00\x00";
    for (let i = 1; i < 5000; i++) {
      const put = Buffer.alloc(4);
      put.writeUInt32LE(i);
      const prev = Buffer.alloc(4);
      prev.writeUInt32LE(i - 1);
      s += "]r" + put.toString("latin1") + "0" + "j" + prev.toString("latin1") + "j" + put.toString("latin1") + "a0";
    }
    s += "j\x00\x00\x00\x00.";
    const err = errorOf(() => load(bin(s)));
    expect(err).toBeInstanceOf(UnsupportedFormatError);
  });

  it("refuses lengths past the end before allocating (4 GiB BINUNICODE, 2^63 BINBYTES8, FRAME, LONG4, BINSTRING)", () => {
    const cases = [
      "\x80\x02X\xff\xff\xff\xffab.",
      "\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\x7fab.",
      "\x80\x04\x8d\x00\x00\x00\x00\x01\x00\x00\x00ab.",
      "\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\xffN.",
      "\x80\x02\x8b\xff\xff\xff\x7fab.",
      "\x80\x02T\xff\xff\xff\x7fab.",
      "\x80\x05\x96\x00\x00\x00\x00\x10\x00\x00\x00.",
    ];
    for (const c of cases) {
      const err = errorOf(() => load(bin(c)));
      expect(err, JSON.stringify(c)).toBeInstanceOf(CorruptCheckpointError);
      expect(err.message).toMatch(/claims \d+ bytes but only \d+ remain/);
    }
    expect(() => load(bin("\x80\x02T\xff\xff\xff\xffab."))).toThrow(/negative length/);
  });

  it("cuts off a file that copies the same list over and over (work linear in file size)", () => {
    const list = "]q\x00(" + "N".repeat(100_000) + "e";
    const copies = "c__builtin__\nset\nq\x01" + "h\x01h\x00\x85R0".repeat(100_000);
    const started = performance.now();
    const err = errorOf(() => load(bin("\x80\x02" + list + copies + "N.")));
    expect(err).toBeInstanceOf(UnsupportedFormatError);
    expect(err.message).toMatch(/far more copying than its \d+ bytes justify/);
    expect(performance.now() - started).toBeLessThan(5000);
    // the same copy done once is fine
    expect(load(bin("\x80\x02" + list + "c__builtin__\nset\nq\x01h\x01h\x00\x85R."))).toEqual(new Set([null]));
  });

  it("refuses bytearray(huge) instead of allocating it", () => {
    const err = errorOf(() => load(bin("\x80\x02c__builtin__\nbytearray\nJ\xff\xff\xff\x7f\x85R.")));
    expect(err).toBeInstanceOf(CorruptCheckpointError);
    expect(err.message).toContain("builtins.bytearray");
  });

  it("reports truncation at every cut of a valid pickle", () => {
    const out = runPython(`
import pickle, base64, collections
v = {"a": [1, 2.5, "x" * 300, b"\\x00\\xff", (1, 2), {3, 4}], "b": collections.OrderedDict(k=10**30)}
for p in range(6): print(base64.b64encode(pickle.dumps(v, protocol=p)).decode())`);
    for (const line of out.trim().split("\n")) {
      const bytes = new Uint8Array(Buffer.from(line, "base64"));
      expect(() => load(bytes)).not.toThrow();
      for (let cut = 0; cut < bytes.length; cut++) {
        const err = errorOf(() => load(bytes.subarray(0, cut)));
        expect(err, `cut at ${cut}`).toBeInstanceOf(CorruptCheckpointError);
        expect(err.message).toContain("evil.pkl");
      }
    }
    expect(errorOf(() => load(bin("\x80\x02]q\x00(K\x01"))).message).toMatch(/ends at byte 8 before its STOP/);
  });

  it("throws only savepoint errors on randomly damaged pickles", () => {
    const out = runPython(`
import pickle, base64, collections
v = {"a": [1, 2.5, "xyz", b"\\x00\\xff", (1, 2), {3, 4}, None, True], "b": collections.OrderedDict(k=10**30), 7: frozenset([1])}
for p in range(6): print(base64.b64encode(pickle.dumps(v, protocol=p)).decode())`);
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (const line of out.trim().split("\n")) {
      const good = new Uint8Array(Buffer.from(line, "base64"));
      for (let trial = 0; trial < 400; trial++) {
        const bad = good.slice();
        for (let k = 0; k <= rand(3); k++) bad[rand(bad.length)] = rand(256);
        try {
          load(bad);
        } catch (err) {
          expect(err, String(err)).toBeInstanceOf(SavepointError);
        }
      }
    }
  });

  it("names an unknown opcode and its offset", () => {
    const err = errorOf(() => load(bin("\x80\x02N\xff.")));
    expect(err).toBeInstanceOf(CorruptCheckpointError);
    expect(err.message).toMatch(/unknown pickle opcode 0xff \(pickle byte 3\)/);
  });

  it("refuses stack underflow, including reaching below a MARK", () => {
    expect(() => load(bin("\x80\x02R."))).toThrow(CorruptCheckpointError);
    expect(() => load(bin("\x80\x02N(a."))).toThrow(/stack is empty/);
    expect(() => load(bin("\x80\x02e."))).toThrow(/no MARK/);
    expect(() => load(bin("\x80\x02."))).toThrow(CorruptCheckpointError);
  });

  it("refuses out-of-band buffers and unknown protocols", () => {
    expect(() => load(bin("\x80\x05\x97."))).toThrow(UnsupportedFormatError);
    expect(() => load(bin("\x80\x06N."))).toThrow(UnsupportedFormatError);
  });

  it("stores a __proto__ key as an own property, never as the prototype", () => {
    const obj = load(bin("\x80\x02}X\x09\x00\x00\x00__proto__}X\x08\x00\x00\x00pollutedK\x01ss.")) as Record<string, unknown>;
    expect(Object.getPrototypeOf(obj)).toBe(Object.prototype);
    expect(Object.hasOwn(obj, "__proto__")).toBe(true);
    expect(Object.getOwnPropertyDescriptor(obj, "__proto__")?.value).toEqual({ polluted: 1 });
    expect(obj.polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    // the same through DICT, OrderedDict, and BUILD on a placeholder
    const viaDict = load(bin("(X\x09\x00\x00\x00__proto__K\x01d.")) as Record<string, unknown>;
    expect(Object.getPrototypeOf(viaDict)).toBe(Object.prototype);
    expect(Object.keys(viaDict)).toEqual(["__proto__"]);
    const viaBuild = load(bin("\x80\x02cm\nC\n)\x81}X\x09\x00\x00\x00__proto__]sb.")) as PyObject;
    expect(Object.getPrototypeOf(viaBuild.state)).toBe(Object.prototype);
    expect(Object.hasOwn(viaBuild.state as object, "__proto__")).toBe(true);
  });

  it("never lets a dict's pre-Map identity escape through the stack", () => {
    // L = []; d = {}; DUP d; d[(1,)] = 2 (d becomes a Map); POP; L.append(d)
    const v = load(bin("\x80\x02]}2K\x01\x85K\x02s0a.")) as unknown[];
    expect(v[0]).toBeInstanceOf(Map);
    expect([...(v[0] as Map<unknown, unknown>).values()]).toEqual([2]);
  });

  it("wraps a handler's own failure as a corrupt-checkpoint error naming the global", () => {
    const bytes = bin("\x80\x02ctorch\nSize\n)R.");
    const err = errorOf(() =>
      load(bytes, {
        globals: () => ({
          call: () => {
            throw new TypeError("boom");
          },
        }),
      }),
    );
    expect(err).toBeInstanceOf(CorruptCheckpointError);
    expect(err.message).toMatch(/torch\.Size could not use the data.*boom/);
  });
});
