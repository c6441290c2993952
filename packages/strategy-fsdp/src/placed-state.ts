import { convertState, copyMarks, isPlainObject, isTensorSource, type AdapterRegistry, type Backend, type SaveFilter } from "@savepoint/core";
import { parameterInfos, type ParameterInfo } from "./parameter-infos.js";
import { isShardedModel, type ShardedModel } from "./sharded-model.js";
import type { RowRange } from "./shard-rows.js";

/** What conversion needs: the Fabric's backend and adapters (with the sharded model's). */
export interface FsdpEnv {
  readonly backend: Backend;
  readonly adapters: AdapterRegistry;
}

/** Rows of a full tensor that this rank holds: a backend tensor (or source) and where it sits. */
export class LocalRows {
  constructor(
    readonly local: unknown,
    /** The full tensor's shape. */
    readonly shape: readonly number[],
    readonly range: RowRange,
  ) {}
}

/** A converted state ready to be laid out: which top-level keys are model or optimizer state. */
export interface PlacedState {
  readonly tree: Record<string, unknown>;
  /** Keys of models and optimizers (DCP content in a sharded checkpoint; the rest is meta.pt). */
  readonly distributed: ReadonlySet<string>;
}

/**
 * Converts `state` as every strategy does (`convertState`, filter included), then says where each
 * tensor belongs: a sharded model's rows and the optimizer state of those rows become
 * {@link LocalRows}; the optimizer state is keyed by parameter name (`state.<fqn>`, `params:
 * [<fqn>, …]`) as Lightning's FSDP checkpoints are, so it reloads into any world size.
 */
export async function placeState(state: Record<string, unknown>, filter: SaveFilter | undefined, env: FsdpEnv): Promise<PlacedState> {
  const converted = await convertState(state, filter, env);
  const params = parameterInfos(state, env.adapters, env.backend);
  const tree: Record<string, unknown> = {};
  const distributed = new Set<string>();
  for (const [key, value] of Object.entries(converted)) {
    const kind = env.adapters.find(state[key])?.kind;
    if (kind === "module") {
      distributed.add(key);
      tree[key] = isShardedModel(state[key]) ? placeModel(state[key], value) : value;
    } else if (kind === "optimizer") {
      distributed.add(key);
      tree[key] = nameKeyedOptimizer(value, params, env.backend);
    } else {
      tree[key] = value;
    }
  }
  return { tree, distributed };
}

function placeModel(model: ShardedModel, sd: unknown): unknown {
  if (!isPlainObject(sd)) return sd;
  const out: Record<string, unknown> = {};
  for (const [k, t] of Object.entries(sd)) {
    const p = model.parameter(k);
    out[k] = p?.sharded ? new LocalRows(t, p.shape, p.range) : t;
  }
  return copyMarks(sd, out);
}

function nameKeyedOptimizer(sd: unknown, params: readonly ParameterInfo[], backend: Backend): unknown {
  if (!isPlainObject(sd)) return sd;
  const shapeOf = (t: unknown) => (backend.isTensor(t) ? backend.describe(t).shape : isTensorSource(t) ? t.shape : undefined);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(sd)) {
    if (k === "state" && isPlainObject(v)) {
      const state: Record<string, unknown> = {};
      for (const [i, entry] of Object.entries(v)) {
        const p = params[Number(i)];
        if (!p || !isPlainObject(entry)) {
          state[i] = entry;
          continue;
        }
        const local = [p.range.rows, ...p.shape.slice(1)].join();
        const placed: Record<string, unknown> = {};
        // Slots shaped like this rank's rows are its part of the full slot; `step` is whole everywhere.
        for (const [slot, t] of Object.entries(entry)) placed[slot] = p.sharded && shapeOf(t)?.join() === local ? new LocalRows(t, p.shape, p.range) : t;
        state[p.fqn] = placed;
      }
      out[k] = state;
    } else if (k === "param_groups" && Array.isArray(v)) {
      out[k] = v.map((g) => (isPlainObject(g) && Array.isArray(g.params) ? { ...g, params: g.params.map((i) => (typeof i === "number" && params[i] ? params[i].fqn : i)) } : g));
    } else {
      out[k] = v;
    }
  }
  return out;
}
