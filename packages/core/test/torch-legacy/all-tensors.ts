import { isStoredTensor, PyObject, type StoredTensor } from "../../src/index.js";

/**
 * Every distinct tensor reachable in a loaded tree, including dict keys and placeholder state
 * (`flatten` keys by path, and paths through tensor-keyed dicts collide).
 */
export function allTensors(root: unknown): StoredTensor[] {
  const seen = new Set<unknown>();
  const found = new Set<StoredTensor>();
  const todo: unknown[] = [root];
  while (todo.length > 0) {
    const v = todo.pop();
    if (typeof v !== "object" || v === null || seen.has(v)) continue;
    seen.add(v);
    if (isStoredTensor(v)) found.add(v);
    else if (Array.isArray(v)) todo.push(...v);
    else if (v instanceof Map) for (const [k, x] of v) todo.push(k, x);
    else if (v instanceof Set) todo.push(...v);
    else if (v instanceof PyObject) {
      todo.push(v.state, ...v.args, ...(v.items ?? []));
      for (const [k, x] of v.entries ?? []) todo.push(k, x);
    } else if (!(v instanceof Uint8Array)) todo.push(...Object.values(v));
  }
  return [...found];
}
