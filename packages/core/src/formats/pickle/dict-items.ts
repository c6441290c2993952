/**
 * How a Python dict read from a pickle becomes a JavaScript value: a plain object while every key
 * is a str or an int (int keys marked with `withIntKeys`), a `Map` as soon as any other key
 * appears or an int key and a str key would share one property name.
 */
import { asOrderedDict, intKeysOf, isOrderedDict, withIntKeys } from "../../tree/python-values.js";

/** A dict under construction: a plain object or a Map. */
export type PyDict = Record<string, unknown> | Map<unknown, unknown>;

/** True for plain objects (not arrays, not class instances): the objects that stand for dicts. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Sets an own property; `__proto__` is defined, never assigned, so it cannot change the prototype. */
export function defineKey(obj: Record<string, unknown>, name: string, value: unknown): void {
  if (name === "__proto__") {
    Object.defineProperty(obj, name, { value, writable: true, enumerable: true, configurable: true });
  } else {
    obj[name] = value;
  }
}

/**
 * Sets `key → value` on `dict` with Python semantics and returns the dict that now holds it: the
 * same object, or a new Map carrying the old entries when the key cannot live on a plain object.
 * The caller must then use the returned dict in place of the old one.
 */
export function setDictItem(dict: PyDict, key: unknown, value: unknown): PyDict {
  if (dict instanceof Map) {
    dict.set(key, value);
    return dict;
  }
  let name: string;
  let isInt: boolean;
  if (typeof key === "string") {
    name = key;
    isInt = false;
  } else if ((typeof key === "number" && Number.isSafeInteger(key)) || typeof key === "bigint") {
    name = String(key);
    isInt = true;
  } else {
    return toMap(dict).set(key, value);
  }
  // Only an existing property can collide (int 1 and str "1" are different Python keys).
  if (Object.hasOwn(dict, name) && intKeysOf(dict).has(name) !== isInt) return toMap(dict).set(key, value);
  defineKey(dict, name, value);
  if (isInt) markIntKey(dict, name);
  return dict;
}

/** The Map equivalent of a plain-object dict, int keys restored to numbers (bigint when unsafe). */
export function toMap(dict: Record<string, unknown>): Map<unknown, unknown> {
  const ints = intKeysOf(dict);
  const map = new Map<unknown, unknown>();
  for (const name of Object.keys(dict)) map.set(ints.has(name) ? intFromKey(name) : name, dict[name]);
  if (isOrderedDict(dict)) asOrderedDict(map);
  return map;
}

function intFromKey(name: string): number | bigint {
  const n = Number(name);
  return Number.isSafeInteger(n) ? n : BigInt(name);
}

function markIntKey(dict: object, name: string): void {
  const keys = intKeysOf(dict);
  if (keys.has(name)) return;
  if (keys.size === 0) {
    withIntKeys(dict, [name]);
    return;
  }
  // withIntKeys stores one set and intKeysOf hands that set back: growing it in place keeps
  // marking linear. Fall back to re-marking if that ever stops being true.
  (keys as Set<string>).add(name);
  if (!intKeysOf(dict).has(name)) withIntKeys(dict, [...keys, name]);
}
