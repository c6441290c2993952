/**
 * The built-in allow-list: the few Python globals plain data pickles need (OrderedDict, set,
 * bytes via `_codecs.encode`, the copyreg helpers of protocols 0–1). Each maps its arguments to
 * plain values; every other global stays an inert placeholder.
 */
import { CorruptCheckpointError, UnsupportedFormatError } from "../../errors.js";
import { asOrderedDict, intKeysOf, isTuple, PyGlobal, PyObject } from "../../tree/python-values.js";
import { isPlainObject, setDictItem, type PyDict } from "./dict-items.js";
import type { GlobalHandler } from "./global-handler.js";

/** What a built-in handler may ask of the machine that runs it. */
export interface BuiltinContext {
  /** File or record name for error messages. */
  where: string;
  /** NEWOBJ semantics (`cls.__new__(cls, *args)`) for a class value found in the pickle. */
  construct(cls: unknown, args: unknown[]): unknown;
}

/** The handler of an allow-listed built-in global, or undefined when it is not one. */
export function builtinGlobal(module: string, name: string, ctx: BuiltinContext): GlobalHandler | undefined {
  const value = new PyGlobal(module, name);
  const fail = (what: string): never => {
    throw new CorruptCheckpointError(
      `${ctx.where}: ${module}.${name} was called with ${what}; the pickle is corrupt or was not written by Python's pickle.`,
      { subject: ctx.where },
    );
  };
  switch (`${module}.${name}`) {
    case "collections.OrderedDict":
      return {
        value,
        call: (args) => (args.length === 0 ? asOrderedDict({}) : orderedDictFrom(args[0], fail)),
        construct: () => asOrderedDict({}),
      };
    case "builtins.set":
    case "builtins.frozenset":
      return { value, call: (args) => new Set(args.length === 0 ? [] : iterableItems(args[0], fail)), construct: () => new Set() };
    case "builtins.bytearray":
    case "builtins.bytes":
      return { value, call: (args) => bytesFrom(args, ctx.where, fail), construct: () => new Uint8Array(0) };
    case "_codecs.encode":
      return {
        value,
        call: (args) => {
          if (typeof args[0] !== "string") return fail("a first argument that is not a str");
          return encode(args[0], args[1] ?? "utf-8", ctx.where, fail);
        },
      };
    case "copyreg._reconstructor":
      // Protocols 0–1 restore instances as `_reconstructor(cls, object, None)` followed by BUILD.
      return {
        value,
        call: (args) => {
          if (args.length !== 3) return fail(`${args.length} arguments instead of 3`);
          const obj = ctx.construct(args[0], []);
          const state = args[2];
          // A subclass of a built-in carries the base's value: list items, dict entries, or
          // the argument of base.__new__ (int, str, ...).
          if (obj instanceof PyObject && state !== null && state !== undefined) {
            if (Array.isArray(state) && !isTuple(state)) obj.items = [...state];
            else if (state instanceof Map) obj.entries = [...state];
            else if (isPlainObject(state)) {
              const ints = intKeysOf(state);
              obj.entries = Object.keys(state).map((k): [unknown, unknown] => [ints.has(k) ? intKey(k) : k, state[k]]);
            } else obj.args.push(state);
          }
          return obj;
        },
      };
    case "copyreg.__newobj__":
      return {
        value,
        call: (args) => (args.length === 0 ? fail("no class") : ctx.construct(args[0], args.slice(1))),
      };
    // Known-harmless classes: allowed, but kept inert (the machine turns calls into PyObjects).
    case "builtins.object":
    case "builtins.complex":
    case "builtins.slice":
      return { value };
    default:
      return undefined;
  }
}

function orderedDictFrom(source: unknown, fail: (what: string) => never): PyDict {
  let dict: PyDict = asOrderedDict({});
  if (source instanceof Map) {
    for (const [k, v] of source) dict = setDictItem(dict, k, v);
  } else if (isPlainObject(source)) {
    const ints = intKeysOf(source);
    for (const k of Object.keys(source)) dict = setDictItem(dict, ints.has(k) ? intKey(k) : k, source[k]);
  } else {
    for (const pair of iterableItems(source, fail)) {
      if (!Array.isArray(pair) || pair.length !== 2) fail("an item that is not a (key, value) pair");
      dict = setDictItem(dict, (pair as unknown[])[0], (pair as unknown[])[1]);
    }
  }
  return dict;
}

function intKey(name: string): number | bigint {
  const n = Number(name);
  return Number.isSafeInteger(n) ? n : BigInt(name);
}

function iterableItems(source: unknown, fail: (what: string) => never): unknown[] {
  if (Array.isArray(source)) return source;
  if (source instanceof Set) return [...source];
  return fail("an argument that is not a list, tuple or set");
}

function bytesFrom(args: unknown[], where: string, fail: (what: string) => never): Uint8Array {
  if (args.length === 0) return new Uint8Array(0);
  const [source, encoding] = args;
  if (source instanceof Uint8Array) return source.slice();
  if (typeof source === "string") return encode(source, encoding ?? "utf-8", where, fail);
  if (Array.isArray(source)) {
    const out = new Uint8Array(source.length);
    source.forEach((b, i) => {
      if (typeof b !== "number" || !Number.isInteger(b) || b < 0 || b > 255) fail("a list that is not of byte values");
      out[i] = b as number;
    });
    return out;
  }
  // bytearray(n) would allocate n zero bytes on the file's say-so; no pickler writes it.
  return fail("an argument that is not bytes, a str or a list of byte values");
}

function encode(text: string, encoding: unknown, where: string, fail: (what: string) => never): Uint8Array {
  const enc = typeof encoding === "string" ? encoding.toLowerCase().replace(/_/g, "-") : "";
  if (enc === "latin1" || enc === "latin-1" || enc === "iso-8859-1" || enc === "iso8859-1" || enc === "l1" || enc === "ascii") {
    const limit = enc === "ascii" ? 0x7f : 0xff;
    const out = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c > limit) fail(`a str that cannot be encoded as ${enc}`);
      out[i] = c;
    }
    return out;
  }
  if (enc === "utf-8" || enc === "utf8") return new TextEncoder().encode(text);
  throw new UnsupportedFormatError(
    `${where}: the pickle encodes bytes with the text encoding ${JSON.stringify(encoding)}; savepoint reads latin-1 and utf-8 only. Re-save the checkpoint with a current PyTorch.`,
    { subject: where },
  );
}
