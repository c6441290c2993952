import { isTensorSource } from "../tensor/tensor-source.js";
import { checkDepth, isPlainObject, keyPath } from "../tree/plain.js";
import { PyGlobal, PyObject } from "../tree/python-values.js";

/** One leaf of a checkpoint tree, as `inspect` and `diff` list it. */
export type TreeEntry =
  | { key: string; kind: "tensor"; dtype: string; shape: number[]; bytes: number; value: unknown }
  | { key: string; kind: "value"; value: unknown }
  | { key: string; kind: "object"; type: string };

/** Walks a loaded checkpoint tree in order, yielding its leaves with their dotted keys. */
export function* treeEntries(tree: unknown, prefix = "", depth = 0): Generator<TreeEntry> {
  checkDepth(depth, prefix);
  if (isTensorSource(tree)) {
    yield { key: prefix, kind: "tensor", dtype: tree.dtype, shape: [...tree.shape], bytes: tree.byteLength, value: tree };
  } else if (Array.isArray(tree)) {
    if (tree.length === 0) yield { key: prefix, kind: "value", value: [] };
    for (let i = 0; i < tree.length; i++) yield* treeEntries(tree[i], keyPath(prefix, i), depth + 1);
  } else if (tree instanceof Map) {
    for (const [k, v] of tree) yield* treeEntries(v, keyPath(prefix, String(k)), depth + 1);
  } else if (isPlainObject(tree)) {
    const keys = Object.keys(tree);
    if (keys.length === 0 && prefix !== "") yield { key: prefix, kind: "value", value: {} };
    for (const k of keys) yield* treeEntries(tree[k], keyPath(prefix, k), depth + 1);
  } else if (tree instanceof PyObject || tree instanceof PyGlobal) {
    yield { key: prefix, kind: "object", type: `${tree.module}.${tree.name}` };
  } else {
    yield { key: prefix, kind: "value", value: tree };
  }
}
