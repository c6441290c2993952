import { UnsupportedFormatError } from "../errors.js";

/** Deepest nesting savepoint walks; deeper trees are refused instead of overflowing the stack. */
export const MAX_TREE_DEPTH = 1000;

/** True for `{}`-style objects (own enumerable data, Object or null prototype). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** A key path for messages: `model.dense.kernel`, `hparams.layers[2]`. */
export function keyPath(parent: string, key: string | number): string {
  if (typeof key === "number") return `${parent}[${key}]`;
  return parent === "" ? key : `${parent}.${key}`;
}

/** Throws when a walk went deeper than {@link MAX_TREE_DEPTH}. */
export function checkDepth(depth: number, path: string): void {
  if (depth > MAX_TREE_DEPTH) {
    throw new UnsupportedFormatError(`the value at ${path.slice(0, 200)}… is nested deeper than ${MAX_TREE_DEPTH} levels; savepoint refuses such trees.`, { subject: path.slice(0, 200) });
  }
}

/** Sets `obj[key] = value` as an own property even for keys like `__proto__`. */
export function setOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === "__proto__") Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  else obj[key] = value;
}
