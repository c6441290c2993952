import type { AdapterContext, AdapterRegistry } from "../adapters/stateful-adapter.js";
import type { Backend } from "../backends/backend.js";
import { describe } from "../capabilities.js";
import { InvalidArgumentError, StrictLoadError } from "../errors.js";
import { isTensorSource } from "../tensor/tensor-source.js";
import { checkDepth, isPlainObject, keyPath } from "../tree/plain.js";
import { copyMarks, PyGlobal, PyObject } from "../tree/python-values.js";

/** Per top-level key, which items of its state dict to save. */
export type SaveFilter = Record<string, (key: string, value: unknown) => boolean>;

/** What state conversion and restoring need from the surrounding Fabric. */
export interface StateEnv {
  readonly backend: Backend;
  readonly adapters: AdapterRegistry;
}

/**
 * Checks a filter the way Lightning does: an object of functions whose keys are all in `state`.
 */
export function validateFilter(filter: unknown, state: Record<string, unknown>): asserts filter is SaveFilter | undefined {
  if (filter === undefined) return;
  if (!isPlainObject(filter)) throw new InvalidArgumentError(`\`filter\` must be an object of (key, value) => boolean functions per state key, got ${describe(filter)}.`);
  const unknown = Object.keys(filter).filter((k) => !(k in state));
  if (unknown.length > 0) {
    throw new InvalidArgumentError(`the filter keys ${unknown.map((k) => `"${k}"`).join(", ")} are not in the state (keys: ${Object.keys(state).map((k) => `"${k}"`).join(", ")}). Filter only keys you save.`, { subject: unknown[0] });
  }
  for (const [k, fn] of Object.entries(filter)) {
    if (typeof fn !== "function") throw new InvalidArgumentError(`\`filter.${k}\` must be a function (key, value) => boolean, got ${describe(fn)}.`, { subject: k });
  }
}

/**
 * Lightning's `_convert_stateful_objects_in_state` + `_apply_filter`: models, optimizers and
 * stateful objects become their state dicts; other values stay as they are; a filter keeps the
 * items of a converted dict it accepts and drops the key when it accepts none.
 */
export async function convertState(state: Record<string, unknown>, filter: SaveFilter | undefined, env: StateEnv): Promise<Record<string, unknown>> {
  if (!isPlainObject(state)) throw new InvalidArgumentError(`the state to save must be a plain object of named values, got ${describe(state)}.`);
  const out: Record<string, unknown> = {};
  for (const [key, obj] of Object.entries(state)) {
    const adapter = env.adapters.find(obj);
    const ctx: AdapterContext = { backend: env.backend, state, adapters: env.adapters, key };
    const converted = adapter ? await adapter.stateDict(obj, ctx) : obj;
    const fn = filter?.[key];
    if (fn && isPlainObject(converted)) {
      let kept: Record<string, unknown> | undefined;
      for (const [k, v] of Object.entries(converted)) {
        if (fn(k, v)) (kept ??= copyMarks(converted, {} as Record<string, unknown>))[k] = v;
      }
      if (kept) out[key] = kept;
    } else {
      out[key] = converted;
    }
  }
  return out;
}

/**
 * Replaces backend tensors with streaming sources and checks every leaf can be written, naming
 * the path of the first one that cannot. Returns a new tree; the caller's objects are untouched.
 */
export function toWritableTree(value: unknown, backend: Backend, path = "", depth = 0): unknown {
  checkDepth(depth, path);
  if (value === null || typeof value === "number" || typeof value === "string" || typeof value === "boolean" || typeof value === "bigint") return value;
  if (value === undefined) throw new InvalidArgumentError(`${path || "the state"} is undefined; savepoint stores null, numbers, strings, booleans, tensors, arrays and plain objects. Use null or omit the key.`, { subject: path });
  if (isTensorSource(value) || value instanceof Uint8Array || value instanceof PyGlobal) return value;
  if (backend.isTensor(value)) return backend.toSource(value);
  if (value instanceof PyObject) return value;
  if (Array.isArray(value)) {
    const out = value.map((v, i) => toWritableTree(v, backend, keyPath(path, i), depth + 1));
    return copyMarks(value, out);
  }
  if (value instanceof Map) {
    const out = new Map();
    for (const [k, v] of value) out.set(k, toWritableTree(v, backend, keyPath(path, String(k)), depth + 1));
    return out;
  }
  if (value instanceof Set) return new Set([...value].map((v, i) => toWritableTree(v, backend, keyPath(path, i), depth + 1)));
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = toWritableTree(v, backend, keyPath(path, k), depth + 1);
    return copyMarks(value, out);
  }
  throw new InvalidArgumentError(
    `${path || "the state"} is ${describe(value)}, which savepoint cannot store. Give it stateDict()/loadStateDict() methods, or store plain data (numbers, strings, booleans, null, arrays, plain objects) and tensors.`,
    { subject: path },
  );
}

/** Lightning's `_validate_keys_for_strict_loading`. */
export function validateRequestedKeys(requested: string[], checkpoint: Record<string, unknown>, strict: boolean, path: string): void {
  const missing = requested.filter((k) => !(k in checkpoint));
  if (strict && missing.length > 0) {
    throw new StrictLoadError(
      `the requested state contains the key "${missing[0]}", which does not exist in the checkpoint ${path} (it has ${Object.keys(checkpoint).map((k) => `"${k}"`).join(", ")}). To load the keys that exist, pass \`strict: false\`.`,
      { subject: missing[0] },
    );
  }
}

/**
 * Lightning's `load_checkpoint` body: stateful objects restore in place (modules honour `strict`),
 * tf.Variables are assigned in place, tensors and plain values are replaced in `state`, and what the
 * checkpoint holds beyond the requested keys is returned.
 */
export async function restoreState(state: Record<string, unknown>, checkpoint: unknown, strict: boolean, env: StateEnv, path: string): Promise<Record<string, unknown>> {
  if (!isPlainObject(checkpoint)) {
    throw new StrictLoadError(`${path} does not hold a dictionary of named values at the top, so it cannot be loaded into a state object. Load it without a state (\`fabric.load(path)\`) or with loadRaw.`, { subject: path });
  }
  validateRequestedKeys(Object.keys(state), checkpoint, strict, path);
  const remainder: Record<string, unknown> = { ...checkpoint };
  for (const [name, obj] of Object.entries(state)) {
    if (!(name in remainder)) continue;
    const saved = remainder[name];
    delete remainder[name];
    const adapter = env.adapters.find(obj);
    if (adapter) {
      await adapter.loadStateDict(obj, saved, { backend: env.backend, state, adapters: env.adapters, key: name, strict });
    } else if (env.backend.isAssignable?.(obj) && isTensorSource(saved)) {
      await env.backend.assign(obj, saved, name);
    } else if (env.backend.isTensor(obj) && isTensorSource(saved)) {
      state[name] = await env.backend.create(saved, name);
    } else {
      state[name] = saved;
    }
  }
  return remainder;
}
