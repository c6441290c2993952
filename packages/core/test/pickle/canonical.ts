/**
 * One canonical, JSON-comparable form of a Python value, computed the same way on both sides:
 * in TypeScript for our values and in Python (PY_CANON) for Python's, so a round trip can be
 * compared with toEqual. Ints within 2^53 and floats share "num" (JavaScript cannot tell them
 * apart); dict and set entries are sorted, because plain objects reorder integer-like keys.
 */
import { intKeysOf, isOrderedDict, isTuple, PyGlobal, PyObject } from "../../src/tree/python-values.js";

export type Canon = unknown[];

const f64 = new DataView(new ArrayBuffer(8));
function numHex(v: number): string {
  f64.setFloat64(0, v, false);
  let s = "";
  for (let i = 0; i < 8; i++) s += f64.getUint8(i).toString(16).padStart(2, "0");
  return s;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
}

function sortEntries(items: unknown[]): unknown[] {
  return items
    .map((x) => [JSON.stringify(x), x] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map((p) => p[1]);
}

/**
 * Canonical form of a value produced by (or given to) our pickle code. With `asWritten`, integral
 * numbers past 2^53 count as ints, as the pickler writes them; a number read from a pickle may
 * also be such a float (1e300), so by default every number is "num".
 */
export function canon(v: unknown, asWritten = false): Canon {
  const c = (x: unknown): Canon => canon(x, asWritten);
  if (v === null) return ["none"];
  if (typeof v === "boolean") return ["bool", v];
  if (typeof v === "number") {
    return asWritten && Number.isInteger(v) && !Number.isSafeInteger(v) ? ["int", BigInt(v).toString()] : ["num", numHex(v)];
  }
  if (typeof v === "bigint") return v >= -(2n ** 53n - 1n) && v <= 2n ** 53n - 1n ? ["num", numHex(Number(v))] : ["int", v.toString()];
  if (typeof v === "string") return ["str", v];
  if (v instanceof Uint8Array) return ["bytes", hex(v)];
  if (Array.isArray(v)) return [isTuple(v) ? "tuple" : "list", v.map(c)];
  if (v instanceof Set) return ["set", sortEntries([...v].map(c))];
  if (v instanceof Map) return [isOrderedDict(v) ? "odict" : "dict", sortEntries([...v].map(([k, x]) => [c(k), c(x)]))];
  if (v instanceof PyGlobal) return ["global", v.module, v.name];
  if (v instanceof PyObject) {
    return ["obj", v.module, v.name, v.args.map(c), v.state === undefined ? ["none"] : c(v.state)];
  }
  if (typeof v === "object") {
    const o = v as Record<string, unknown>;
    const ints = intKeysOf(o);
    const entries = Object.keys(o).map((k) => [ints.has(k) ? c(BigInt(k)) : ["str", k], c(o[k])]);
    return [isOrderedDict(o) ? "odict" : "dict", sortEntries(entries)];
  }
  throw new Error(`no canonical form for ${String(v)}`);
}

/** Re-sorts a canonical form parsed from Python's JSON with our ordering. */
export function normalize(c: unknown): unknown {
  if (!Array.isArray(c)) return c;
  const [tag, ...rest] = c as [string, ...unknown[]];
  switch (tag) {
    case "list":
    case "tuple":
      return [tag, (rest[0] as unknown[]).map(normalize)];
    case "set":
      return [tag, sortEntries((rest[0] as unknown[]).map(normalize))];
    case "dict":
    case "odict":
      return [tag, sortEntries((rest[0] as unknown[][]).map(([k, x]) => [normalize(k), normalize(x)]))];
    case "obj":
      return [tag, rest[0], rest[1], (rest[2] as unknown[]).map(normalize), normalize(rest[3])];
    default:
      return c;
  }
}

/** Python source defining canon(v), the counterpart of ours. */
export const PY_CANON = String.raw`
import struct, collections, json, base64, sys, pickle
def canon(v):
    if v is None: return ["none"]
    if isinstance(v, bool): return ["bool", v]
    if isinstance(v, int):
        if -(2**53 - 1) <= v <= 2**53 - 1: return ["num", struct.pack(">d", float(v)).hex()]
        return ["int", str(v)]
    if isinstance(v, float): return ["num", struct.pack(">d", v).hex()]
    if isinstance(v, str): return ["str", v]
    if isinstance(v, (bytes, bytearray)): return ["bytes", bytes(v).hex()]
    if isinstance(v, tuple): return ["tuple", [canon(x) for x in v]]
    if isinstance(v, list): return ["list", [canon(x) for x in v]]
    if isinstance(v, (set, frozenset)): return ["set", [canon(x) for x in v]]
    if isinstance(v, collections.OrderedDict): return ["odict", [[canon(k), canon(x)] for k, x in v.items()]]
    if isinstance(v, dict): return ["dict", [[canon(k), canon(x)] for k, x in v.items()]]
    if isinstance(v, type) or callable(v): return ["global", v.__module__, v.__qualname__]
    return ["pyobj", type(v).__module__, type(v).__qualname__, repr(v)]
`;
