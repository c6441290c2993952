import type { AdapterRegistry, Backend } from "@savepoint/core";
import { isShardedModel } from "./sharded-model.js";
import type { RowRange } from "./shard-rows.js";

/** One parameter an optimizer in the state updates, in the optimizer's order. */
export interface ParameterInfo {
  /** Position in the optimizer's parameter list (torch's index-keyed optimizer state). */
  readonly index: number;
  /**
   * The name Lightning keys optimizer state by in sharded and full FSDP checkpoints: the
   * parameter's key in its model (`fc1.weight`), prefixed by the model's state key when the state
   * holds several models.
   */
  readonly fqn: string;
  /** The key prefixed by its model's state key (`model.fc1.weight`), accepted when loading. */
  readonly qualified: string;
  /** Full shape. */
  readonly shape: readonly number[];
  readonly sharded: boolean;
  /** The rows this rank holds (all of them when not sharded). */
  readonly range: RowRange;
}

/**
 * The trainable parameters of every model in `state`, in the order the tfjs optimizer adapter
 * indexes optimizer state by (models in state order, each in its own parameter order).
 */
export function parameterInfos(state: Readonly<Record<string, unknown>>, adapters: AdapterRegistry, backend: Backend): ParameterInfo[] {
  const models = Object.entries(state).filter(([, v]) => adapters.find(v)?.parameters);
  const out: ParameterInfo[] = [];
  for (const [name, model] of models) {
    const sharded = isShardedModel(model) ? model : undefined;
    for (const p of adapters.find(model)!.parameters!(model)) {
      const info = sharded?.parameter(p.key);
      const shape = info?.shape ?? backend.describe(p.variable).shape;
      out.push({
        index: out.length,
        fqn: models.length === 1 ? p.key : `${name}.${p.key}`,
        qualified: `${name}.${p.key}`,
        shape,
        sharded: info?.sharded ?? false,
        range: info?.range ?? { start: 0, rows: shape[0] ?? 1 },
      });
    }
  }
  return out;
}
