/**
 * How Python values that JavaScript lacks are represented in a checkpoint tree, so that a file
 * read from PyTorch writes back the same: tuples, dicts with integer keys, and instances of
 * classes savepoint does not know (kept as inert placeholders, never executed).
 */

const TUPLE = Symbol.for("savepoint.pyTuple");
const INT_KEYS = Symbol.for("savepoint.pyIntKeys");
const ORDERED = Symbol.for("savepoint.pyOrderedDict");

/** Marks an array as a Python tuple (written back as a tuple). Returns the same array. */
export function asTuple<T extends unknown[]>(items: T): T {
  Object.defineProperty(items, TUPLE, { value: true, enumerable: false });
  return items;
}

/** True for arrays read from (or marked as) Python tuples. */
export function isTuple(value: unknown): boolean {
  return Array.isArray(value) && (value as unknown as Record<symbol, unknown>)[TUPLE] === true;
}

/**
 * Marks keys of `obj` that are Python integers (e.g. optimizer `state` indexed by parameter).
 * With no `keys`, every key that is a canonical integer string is marked. Returns `obj`.
 */
export function withIntKeys<T extends object>(obj: T, keys?: Iterable<string>): T {
  const set = new Set(keys ?? Object.keys(obj).filter((k) => /^(0|-?[1-9]\d*)$/.test(k)));
  Object.defineProperty(obj, INT_KEYS, { value: set, enumerable: false, configurable: true });
  return obj;
}

/** The keys of `obj` that are Python integers. */
export function intKeysOf(obj: object): ReadonlySet<string> {
  return ((obj as Record<symbol, unknown>)[INT_KEYS] as Set<string> | undefined) ?? new Set();
}

/** Marks a plain object as a `collections.OrderedDict` (torch state dicts are). Returns `obj`. */
export function asOrderedDict<T extends object>(obj: T): T {
  Object.defineProperty(obj, ORDERED, { value: true, enumerable: false, configurable: true });
  return obj;
}

/** True for objects read from (or marked as) an OrderedDict. */
export function isOrderedDict(value: unknown): boolean {
  return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[ORDERED] === true;
}

/**
 * A reference to a Python global (`module.name`) that savepoint does not implement. It is inert:
 * calling it in a pickle produces a {@link PyObject}, nothing runs.
 */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  toString(): string {
    return `<global ${this.module}.${this.name}>`;
  }
}

/**
 * An instance of a Python class savepoint does not know, kept as data: the class's module and
 * name, the arguments it was built with, and the state set on it (`__setstate__` / `__dict__`).
 */
export class PyObject {
  /** Items appended (lists) or set (dicts) on the object by the pickle, if any. */
  items?: unknown[];
  entries?: [unknown, unknown][];
  constructor(
    readonly module: string,
    readonly name: string,
    readonly args: unknown[],
    public state: unknown = undefined,
  ) {}
  toString(): string {
    return `<${this.module}.${this.name} object (inert)>`;
  }
}

/** Copies the Python marks (tuple, int keys, OrderedDict) of `from` onto `to`. Returns `to`. */
export function copyMarks<T extends object>(from: object, to: T): T {
  for (const s of Object.getOwnPropertySymbols(from)) Object.defineProperty(to, s, Object.getOwnPropertyDescriptor(from, s)!);
  return to;
}
