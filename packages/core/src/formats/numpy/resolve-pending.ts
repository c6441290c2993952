import { pyStateOf, setPyState } from "../pickle/py-state.js";
import { isPlainObject } from "../../tree/plain.js";
import { PyObject } from "../../tree/python-values.js";
import { PendingNumpyArray } from "./numpy-array.js";

/**
 * Replaces every pending numpy array in an unpickled tree by its result, in place, keeping shared
 * references shared. Iterative, and each container is visited once, so cycles (legal in
 * pickles) and deep trees are safe.
 */
export function resolvePendingArrays(root: unknown): unknown {
  const swap = (v: unknown): unknown => (v instanceof PendingNumpyArray ? v.result : v);
  const seen = new Set<object>();
  const todo: unknown[] = [swap(root)];
  const visit = (v: unknown): void => {
    if (typeof v === "object" && v !== null && !seen.has(v)) todo.push(v);
  };
  while (todo.length > 0) {
    const node = todo.pop();
    if (typeof node !== "object" || node === null || seen.has(node)) continue;
    seen.add(node);
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) visit((node[i] = swap(node[i])));
    } else if (node instanceof Map) {
      for (const [k, v] of node) {
        const w = swap(v);
        if (w !== v) node.set(k, w);
        visit(w);
      }
    } else if (node instanceof PyObject) {
      for (let i = 0; i < node.args.length; i++) visit((node.args[i] = swap(node.args[i])));
      visit((node.state = swap(node.state)));
      if (node.items) for (let i = 0; i < node.items.length; i++) visit((node.items[i] = swap(node.items[i])));
      if (node.entries) for (const e of node.entries) visit((e[1] = swap(e[1])));
    } else if (isPlainObject(node)) {
      for (const k of Object.keys(node)) {
        const v = node[k];
        const w = swap(v);
        if (w !== v) node[k] = w; // an own property, so even "__proto__" assigns to it
        visit(w);
      }
    }
    // State a BUILD kept beside a dict (an OrderedDict's attributes) may hold arrays too.
    const state = pyStateOf(node);
    if (state instanceof PendingNumpyArray) setPyState(node, state.result);
    visit(swap(state));
  }
  return swap(root);
}
