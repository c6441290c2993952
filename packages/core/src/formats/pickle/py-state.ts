/**
 * The attribute state (`__dict__`) a pickle BUILDs onto a value that keeps its items elsewhere,
 * such as the `_metadata` torch sets on every state-dict OrderedDict. It is kept beside the
 * value, never mixed into its keys (that would add a `_metadata` entry to the state dict), and
 * an OrderedDict carrying it is written back with the same BUILD.
 */
const PY_STATE = Symbol.for("savepoint.pyState");

/** The state a pickle BUILD set on `value` (its Python `__dict__`), if any. */
export function pyStateOf(value: unknown): unknown {
  return typeof value === "object" && value !== null ? (value as Record<symbol, unknown>)[PY_STATE] : undefined;
}

/** Keeps `state` beside `value` (non-enumerable, so it never shows up as a key). */
export function setPyState(value: object, state: unknown): void {
  if (!Object.isExtensible(value)) return;
  Object.defineProperty(value, PY_STATE, { value: state, writable: true, configurable: true, enumerable: false });
}
