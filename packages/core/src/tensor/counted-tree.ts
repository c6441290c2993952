import { checkDepth, isPlainObject } from "../tree/plain.js";
import { copyMarks } from "../tree/python-values.js";
import { isTensorSource, TENSOR_SOURCE, type TensorSource } from "./tensor-source.js";

/**
 * `tree` with every tensor wrapped so that the bytes streamed through it are reported to
 * `onBytes` (progress of a convert or consolidate). `seen` maps each original tensor to its
 * wrapper: a tensor reached twice stays one storage in the output, and the map's keys are the
 * distinct tensors (their total is the work to do).
 */
export function countedTree(tree: unknown, seen: Map<TensorSource, TensorSource>, onBytes: (n: number) => void, what = "the checkpoint", depth = 0): unknown {
  checkDepth(depth, what);
  if (isTensorSource(tree)) {
    const known = seen.get(tree);
    if (known) return known;
    const t = tree;
    const wrapped = {
      [TENSOR_SOURCE]: true,
      dtype: t.dtype,
      shape: t.shape,
      byteLength: t.byteLength,
      async *chunks(n?: number) {
        for await (const c of t.chunks(n)) {
          yield c;
          onBytes(c.byteLength);
        }
      },
    } as TensorSource;
    seen.set(tree, wrapped);
    return wrapped;
  }
  if (Array.isArray(tree)) return copyMarks(tree, tree.map((v) => countedTree(v, seen, onBytes, what, depth + 1)));
  if (isPlainObject(tree)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(tree)) out[k] = countedTree(v, seen, onBytes, what, depth + 1);
    return copyMarks(tree, out);
  }
  return tree;
}
