/**
 * The last step of unpickling: one iterative pass over the containers of the result that
 * (1) swaps in the Maps that replaced dicts after they were already referenced (a dict turns into
 * a Map when a tuple key arrives, possibly after the memo handed it out), and (2) measures the
 * nesting depth, so code that later walks the tree recursively cannot overflow its stack.
 * Shared sub-trees are measured once; cycles (legal in pickles) are not followed twice.
 */
import { UnsupportedFormatError } from "../../errors.js";
import { PyObject } from "../../tree/python-values.js";
import { isPlainObject } from "./dict-items.js";

interface Frame {
  node: object;
  kids: readonly unknown[];
  next: number;
  /** Height of the tallest child seen so far. */
  height: number;
}

/** Returns `root` with replaced dicts swapped in; throws when nesting exceeds `maxDepth`. */
export function finishTree(root: unknown, maxDepth: number, replaced: Map<object, object>, where: string): unknown {
  const swap = replaced.size > 0 ? replaced : undefined;
  if (swap && typeof root === "object" && root !== null) root = swap.get(root) ?? root;
  if (!isContainer(root)) return root;

  const tooDeep = (): UnsupportedFormatError =>
    new UnsupportedFormatError(
      `${where}: the pickle nests containers deeper than ${maxDepth} levels; savepoint refuses it to protect the stack. ` +
        `If the checkpoint is genuine, pass a larger maxDepth.`,
      { subject: where },
    );
  const heights = new Map<object, number>();
  const onPath = new Set<object>();
  const stack: Frame[] = [];
  const open = (node: object): void => {
    if (stack.length >= maxDepth) throw tooDeep();
    onPath.add(node);
    stack.push({ node, kids: childrenOf(node, swap), next: 0, height: 0 });
  };

  open(root);
  while (stack.length > 0) {
    const frame = stack[stack.length - 1] as Frame;
    if (frame.next < frame.kids.length) {
      const kid = frame.kids[frame.next++];
      if (!isContainer(kid)) continue;
      const known = heights.get(kid);
      if (known !== undefined) {
        if (stack.length + known > maxDepth) throw tooDeep();
        if (known > frame.height) frame.height = known;
      } else if (!onPath.has(kid)) {
        open(kid);
      }
      continue;
    }
    stack.pop();
    onPath.delete(frame.node);
    const height = frame.height + 1;
    heights.set(frame.node, height);
    const parent = stack[stack.length - 1];
    if (parent && height > parent.height) parent.height = height;
  }
  return root;
}

function isContainer(value: unknown): value is object {
  return (
    typeof value === "object" &&
    value !== null &&
    (Array.isArray(value) || value instanceof Map || value instanceof Set || value instanceof PyObject || isPlainObject(value))
  );
}

/** The values directly inside `node`, after swapping replaced dicts in place. */
function childrenOf(node: object, swap: Map<object, object> | undefined): readonly unknown[] {
  const fix = (v: unknown): unknown => (swap && typeof v === "object" && v !== null ? (swap.get(v) ?? v) : v);
  if (Array.isArray(node)) {
    if (swap) for (let i = 0; i < node.length; i++) node[i] = fix(node[i]);
    return node;
  }
  if (node instanceof Map) {
    const kids: unknown[] = [];
    for (const [k, v] of node) {
      const w = fix(v);
      if (w !== v) node.set(k, w);
      kids.push(k, w);
    }
    return kids;
  }
  if (node instanceof Set) return [...node];
  if (node instanceof PyObject) {
    const args = node.args;
    for (let i = 0; i < args.length; i++) args[i] = fix(args[i]);
    node.state = fix(node.state);
    const kids: unknown[] = [node.state];
    for (const a of args) kids.push(a);
    if (node.items) {
      for (let i = 0; i < node.items.length; i++) kids.push((node.items[i] = fix(node.items[i])));
    }
    if (node.entries) {
      for (const entry of node.entries) {
        entry[1] = fix(entry[1]);
        kids.push(entry[0], entry[1]);
      }
    }
    return kids;
  }
  const obj = node as Record<string, unknown>;
  const kids: unknown[] = [];
  for (const key of Object.keys(obj)) {
    const v = obj[key];
    const w = fix(v);
    if (w !== v) obj[key] = w; // an own property exists, so even "__proto__" assigns to it
    kids.push(w);
  }
  return kids;
}
