import { isPlainObject, isTensorSource, restoreState, StrictLoadError, withIntKeys, type TensorSource } from "@savepoint/core";
import { parameterInfos, type ParameterInfo } from "./parameter-infos.js";
import type { FsdpEnv } from "./placed-state.js";
import { checkGlobalShape, rowSlice } from "./shard-rows.js";
import { isShardedModel, type ShardedModel } from "./sharded-model.js";

/*
 * Loading, whatever wrote the checkpoint (a sharded folder of any world size, a full file,
 * Lightning, a DDP run): the saved tensors are whole (lazily reassembled from their chunks), and
 * each rank cuts out its rows before anything is read, so it reads only the bytes of its rows.
 */

const list = (ks: readonly string[]) => ks.slice(0, 8).map((k) => `"${k}"`).join(", ") + (ks.length > 8 ? `, … (${ks.length} in all)` : "");

/** One saved weight as this rank loads it: its rows when the parameter is sharded. */
export function weightRows(model: ShardedModel, key: string, value: unknown, where: string): unknown {
  const p = model.parameter(key);
  if (!p || !isTensorSource(value)) return value; // unexpected keys and non-tensors: the adapter reports them
  checkGlobalShape(value, p.shape, where);
  return p.sharded ? rowSlice(value, p.range, where) : value;
}

/** A saved model state dict with every sharded weight cut to this rank's rows. */
export function modelRows(model: ShardedModel, saved: unknown, where: string): unknown {
  if (!isPlainObject(saved)) return saved;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(saved)) out[k] = weightRows(model, k, v, `${where}.${k}`);
  return out;
}

/** Finds the parameter a saved optimizer entry belongs to: by name (Lightning, FSDP) or by index (torch, DDP). */
function resolver(params: readonly ParameterInfo[]): (key: unknown) => ParameterInfo | undefined {
  const byName = new Map<string, ParameterInfo>();
  for (const p of params) {
    byName.set(p.qualified, p);
    byName.set(p.fqn, p);
  }
  return (key) => byName.get(String(key)) ?? (typeof key === "number" || /^(0|[1-9]\d*)$/.test(String(key)) ? params[Number(key)] : undefined);
}

function unknownParameters(names: readonly string[], where: string): StrictLoadError {
  return new StrictLoadError(
    `${where}: the checkpoint has optimizer state for ${list(names)}, which is no trainable parameter of the models in this state. Pass \`strict: false\` to load the state of the parameters that match.`,
    { subject: names[0] },
  );
}

/**
 * A saved optimizer `state` (keyed by parameter name or index) as the tfjs optimizer adapter takes
 * it: keyed by index, each slot of a sharded parameter cut to this rank's rows.
 */
export function optimizerStateRows(saved: unknown, params: readonly ParameterInfo[], strict: boolean, where: string): Record<string, unknown> {
  const resolve = resolver(params);
  const out: Record<string, unknown> = {};
  const unknown: string[] = [];
  for (const [k, entry] of Object.entries(isPlainObject(saved) ? saved : {})) {
    const p = resolve(k);
    if (!p) {
      unknown.push(k);
      continue;
    }
    if (!isPlainObject(entry)) {
      out[String(p.index)] = entry;
      continue;
    }
    const slots: Record<string, unknown> = {};
    for (const [slot, t] of Object.entries(entry)) {
      const at = `${where}.state.${k}.${slot}`;
      if (!isTensorSource(t) || t.shape.length === 0) slots[slot] = t; // step
      else {
        checkGlobalShape(t as TensorSource, p.shape, at);
        slots[slot] = p.sharded ? rowSlice(t, p.range, at) : t;
      }
    }
    out[String(p.index)] = slots;
  }
  if (strict && unknown.length > 0) throw unknownParameters(unknown, where);
  return withIntKeys(out);
}

/** Saved `param_groups` with their `params` as indices of the current parameters. */
export function optimizerGroupsByIndex(saved: unknown, params: readonly ParameterInfo[], strict: boolean, where: string): unknown {
  if (!Array.isArray(saved)) return saved;
  const resolve = resolver(params);
  const unknown: string[] = [];
  const groups = saved.map((g) => {
    if (!isPlainObject(g) || !Array.isArray(g.params)) return g;
    const indices: number[] = [];
    for (const name of g.params) {
      const p = resolve(name);
      if (p) indices.push(p.index);
      else unknown.push(String(name));
    }
    return { ...g, params: indices };
  });
  if (strict && unknown.length > 0) throw unknownParameters(unknown, where);
  return groups;
}

/** A saved optimizer state dict, as {@link optimizerStateRows} and {@link optimizerGroupsByIndex} make it. */
export function optimizerRows(saved: unknown, params: readonly ParameterInfo[], strict: boolean, where: string): unknown {
  if (!isPlainObject(saved)) return saved;
  // An optimizer that never stepped has an empty `state`, which a DCP checkpoint does not keep.
  return { ...saved, state: optimizerStateRows(saved.state, params, strict, where), param_groups: optimizerGroupsByIndex(saved.param_groups, params, strict, where) };
}

/**
 * `restoreState` (Lightning's load semantics: in place, plain values replaced, the remainder
 * returned) over the checkpoint with each sharded model's and optimizer's entry cut to this
 * rank's rows first.
 */
export async function restoreRows(state: Record<string, unknown>, checkpoint: unknown, strict: boolean, env: FsdpEnv, path: string): Promise<Record<string, unknown>> {
  if (!isPlainObject(checkpoint)) return restoreState(state, checkpoint, strict, env, path);
  const params = parameterInfos(state, env.adapters, env.backend);
  const prepared: Record<string, unknown> = { ...checkpoint };
  for (const [key, obj] of Object.entries(state)) {
    if (!(key in checkpoint)) continue;
    if (isShardedModel(obj)) prepared[key] = modelRows(obj, checkpoint[key], key);
    else if (env.adapters.find(obj)?.kind === "optimizer") prepared[key] = optimizerRows(checkpoint[key], params, strict, key);
  }
  return restoreState(state, prepared, strict, env, path);
}
