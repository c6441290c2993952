import { InvalidArgumentError, UnsupportedFormatError } from "../../errors.js";
import { isTensorSource, type TensorSource } from "../../tensor/tensor-source.js";
import { checkDepth, isPlainObject, keyPath, setOwn } from "../../tree/plain.js";
import { asOrderedDict, asTuple, intKeysOf, isOrderedDict, isTuple, withIntKeys } from "../../tree/python-values.js";

/** The `__metadata__` key under which savepoint keeps the non-tensor part of a nested state. */
export const TREE_METADATA_KEY = "savepoint.tree";

/**
 * Splits a nested state into named tensors (dotted paths) and a JSON skeleton for everything
 * else, since safetensors holds only flat tensors plus string metadata. Objects are wrapped
 * (`{"$o": ...}`) so no user key can be mistaken for a marker.
 */
export function flattenTree(tree: unknown): { tensors: { name: string; tensor: TensorSource }[]; skeleton: unknown } {
  const tensors: { name: string; tensor: TensorSource }[] = [];
  const names = new Set<string>();
  const visit = (v: unknown, path: string, depth: number): unknown => {
    checkDepth(depth, path);
    if (isTensorSource(v)) {
      let name = path || "tensor";
      for (let i = 1; names.has(name); i++) name = `${path}__${i}`;
      names.add(name);
      tensors.push({ name, tensor: v });
      return { $t: name };
    }
    if (v === null || typeof v === "string" || typeof v === "boolean") return v;
    if (typeof v === "number") return Number.isFinite(v) && !Object.is(v, -0) ? v : { $f: String(v) };
    if (typeof v === "bigint") return { $n: v.toString() };
    if (v instanceof Uint8Array) return { $b: Array.from(v) };
    if (Array.isArray(v)) {
      const items = v.map((x, i) => visit(x, keyPath(path, i), depth + 1));
      return isTuple(v) ? { $tup: items } : items;
    }
    if (isPlainObject(v)) {
      const o: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) setOwn(o, k, visit(x, keyPath(path, k), depth + 1));
      const out: Record<string, unknown> = { $o: o };
      const ints = intKeysOf(v);
      if (ints.size) out.$i = [...ints];
      if (isOrderedDict(v)) out.$od = 1;
      return out;
    }
    throw new InvalidArgumentError(`${path || "the state"} cannot be stored in safetensors, which holds tensors and JSON-like values only. Save to a .pt/.ckpt file instead.`, { subject: path });
  };
  const skeleton = visit(tree, "", 0);
  return { tensors, skeleton };
}

/** Rebuilds the nested state from a skeleton and the file's tensors. */
export function unflattenTree(skeleton: unknown, tensors: Map<string, TensorSource>, where: string): unknown {
  const bad = (why: string) => new UnsupportedFormatError(`${where}: the savepoint tree in __metadata__ is malformed (${why}).`, { subject: where });
  const visit = (v: unknown, depth: number): unknown => {
    checkDepth(depth, where);
    if (v === null || typeof v === "string" || typeof v === "boolean" || typeof v === "number") return v;
    if (Array.isArray(v)) return v.map((x) => visit(x, depth + 1));
    if (!isPlainObject(v)) throw bad("unexpected value");
    if (typeof v.$t === "string") {
      const t = tensors.get(v.$t);
      if (!t) throw bad(`tensor ${v.$t} is missing`);
      return t;
    }
    if (typeof v.$f === "string") return Number(v.$f);
    if (typeof v.$n === "string") return BigInt(v.$n);
    if (Array.isArray(v.$b)) return Uint8Array.from(v.$b as number[]);
    if (Array.isArray(v.$tup)) return asTuple(v.$tup.map((x) => visit(x, depth + 1)));
    if (isPlainObject(v.$o)) {
      const o: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v.$o)) setOwn(o, k, visit(x, depth + 1));
      if (Array.isArray(v.$i)) withIntKeys(o, v.$i as string[]);
      if (v.$od === 1) asOrderedDict(o);
      return o;
    }
    throw bad("unknown marker");
  };
  return visit(skeleton, 0);
}
