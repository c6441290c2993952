import { asOrderedDict, isTensorSource, StrictLoadError, type StatefulAdapter, type TensorSource } from "@savepoint/core";
import { isShardedModel, type ShardedModel } from "./sharded-model.js";

const list = (ks: string[]) => ks.slice(0, 8).map((k) => `"${k}"`).join(", ") + (ks.length > 8 ? `, … (${ks.length} in all)` : "");

/**
 * A {@link ShardedModel} as a module: its state dict is what this rank holds (its rows of each
 * sharded weight, the whole of the others), its parameters for the optimizer are its own rows,
 * and loading assigns this rank's rows (the strategy cuts them out of the checkpoint first).
 */
export const shardedModelAdapter: StatefulAdapter = {
  name: "FSDP sharded tfjs model",
  kind: "module",
  matches: isShardedModel,

  async stateDict(value) {
    const sd: Record<string, unknown> = {};
    for (const p of (value as ShardedModel).parameters) sd[p.key] = p.local;
    return asOrderedDict(sd);
  },

  parameters(value) {
    return (value as ShardedModel).parameters.filter((p) => p.trainable).map((p) => ({ key: p.key, variable: p.local, name: p.local.name }));
  },

  async loadStateDict(value, state, ctx) {
    const model = value as ShardedModel;
    const where = ctx.key;
    if (typeof state !== "object" || state === null || Array.isArray(state)) {
      throw new StrictLoadError(`${where}: expected a state dict (parameter name → tensor) for the sharded model, got ${state === null ? "null" : typeof state}.`, { subject: where });
    }
    const sd = state as Record<string, unknown>;
    const missing = model.parameters.filter((p) => !(p.key in sd)).map((p) => p.key);
    const unexpected = Object.keys(sd).filter((k) => !model.parameter(k));
    if (ctx.strict && (missing.length > 0 || unexpected.length > 0)) {
      const parts = [missing.length ? `missing key(s) ${list(missing)}` : "", unexpected.length ? `unexpected key(s) ${list(unexpected)}` : ""].filter(Boolean);
      throw new StrictLoadError(`error loading the state dict of ${where}: ${parts.join("; ")}. Pass \`strict: false\` to load the matching keys only.`, { subject: missing[0] ?? unexpected[0] });
    }
    // Everything is checked before the first write, so a failed load leaves the model as it was.
    const plan: { target: unknown; source: TensorSource; key: string }[] = [];
    for (const p of model.parameters) {
      if (!(p.key in sd)) continue;
      const key = `${where}.${p.key}`;
      const v = sd[p.key];
      const source = isTensorSource(v) ? v : ctx.backend.isTensor(v) ? ctx.backend.toSource(v) : undefined;
      if (!source) throw new StrictLoadError(`${key} in the checkpoint is not a tensor (${typeof v}).`, { subject: key });
      const shape = p.local.shape;
      if (source.shape.length !== shape.length || source.shape.some((d, i) => d !== shape[i])) {
        throw new StrictLoadError(`size mismatch for ${key}: rank ${model.rank} holds rows of shape [${shape.join(", ")}] but was given [${source.shape.join(", ")}].`, { subject: key });
      }
      plan.push({ target: p.local, source, key });
    }
    for (const { target, source, key } of plan) await ctx.backend.assign(target, source, key);
  },
};
