/**
 * Remembers that a placeholder instance was made by `cls.__new__` (NEWOBJ, `_reconstructor`)
 * rather than by calling the class, so it is written back the same way: NEWOBJ skips `__init__`,
 * which dataclasses such as DCP's `Metadata` need when their state comes in a later BUILD.
 */
import type { PyObject } from "../../tree/python-values.js";

const NEWOBJ = Symbol.for("savepoint.pyNewObj");
const KWARGS = Symbol.for("savepoint.pyKwargs");

/** Marks `obj` as made by `cls.__new__(cls, *args, **kwargs)`. Returns `obj`. */
export function markNewObj(obj: PyObject, kwargs?: Record<string, unknown>): PyObject {
  Object.defineProperty(obj, NEWOBJ, { value: true, enumerable: false, configurable: true });
  if (kwargs !== undefined && Object.keys(kwargs).length > 0) {
    Object.defineProperty(obj, KWARGS, { value: kwargs, enumerable: false, configurable: true });
  }
  return obj;
}

/** True when `obj` was made by `cls.__new__` (and should be written with NEWOBJ). */
export function isNewObj(obj: PyObject): boolean {
  return (obj as unknown as Record<symbol, unknown>)[NEWOBJ] === true;
}

/** The keyword arguments given to `cls.__new__` (NEWOBJ_EX), if any. */
export function newObjKwargs(obj: PyObject): Record<string, unknown> | undefined {
  return (obj as unknown as Record<symbol, unknown>)[KWARGS] as Record<string, unknown> | undefined;
}
