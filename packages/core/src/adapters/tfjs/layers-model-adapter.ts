import { StrictLoadError } from "../../errors.js";
import { assignAll, type AssignItem } from "../../backends/backend.js";
import { isTensorSource } from "../../tensor/tensor-source.js";
import { isPlainObject } from "../../tree/plain.js";
import { asOrderedDict } from "../../tree/python-values.js";
import type { StatefulAdapter } from "../stateful-adapter.js";
import { isLayersModel, modelParameters, trainableParameters, type LayerLike } from "./model-parameters.js";

/**
 * tfjs-layers models. The state dict maps stable keys (see {@link modelParameters}) to the live
 * variables, like torch's `model.state_dict()`: saving streams them, loading assigns in place.
 */
export const layersModelAdapter: StatefulAdapter = {
  name: "tfjs-layers model",
  kind: "module",
  matches: isLayersModel,

  async stateDict(value) {
    const sd: Record<string, unknown> = {};
    for (const p of modelParameters(value as LayerLike)) sd[p.key] = p.variable.read();
    return asOrderedDict(sd);
  },

  parameters(value) {
    return trainableParameters(value as LayerLike);
  },

  async loadStateDict(value, state, ctx) {
    const model = value as LayerLike;
    const where = ctx.key;
    if (!isPlainObject(state)) {
      throw new StrictLoadError(`${where}: expected a state dict (an object of parameter name → tensor) for model ${model.name}, got ${state === null ? "null" : typeof state}. Did you pass the whole checkpoint? Load it with \`{ ${where}: model }\` or pick the entry with loadRaw's \`map\`.`, { subject: where });
    }
    const params = modelParameters(model);
    const expected = new Set(params.map((p) => p.key));
    const missing = params.filter((p) => !(p.key in state)).map((p) => p.key);
    const unexpected = Object.keys(state).filter((k) => !expected.has(k));
    if (ctx.strict && (missing.length > 0 || unexpected.length > 0)) {
      const list = (ks: string[]) => ks.slice(0, 8).map((k) => `"${k}"`).join(", ") + (ks.length > 8 ? `, … (${ks.length} in all)` : "");
      const parts = [missing.length ? `missing key(s) ${list(missing)}` : "", unexpected.length ? `unexpected key(s) ${list(unexpected)}` : ""].filter(Boolean);
      throw new StrictLoadError(
        `error loading the state dict of ${where}: ${parts.join("; ")}. Pass \`strict: false\` to load the matching keys only, or rename keys with loadRaw's \`map\`.`,
        { subject: missing[0] ?? unexpected[0] },
      );
    }
    // Validate everything before the first write, so a failed load leaves the model untouched.
    const plan: AssignItem[] = [];
    for (const p of params) {
      if (!(p.key in state)) continue;
      const v = state[p.key];
      const key = `${where}.${p.key}`;
      const source = isTensorSource(v) ? v : ctx.backend.isTensor(v) ? ctx.backend.toSource(v) : undefined;
      if (!source) throw new StrictLoadError(`${key} in the checkpoint is not a tensor (${typeof v}); cannot load it into the model.`, { subject: key });
      const variable = p.variable.read();
      const target = ctx.backend.describe(variable);
      if (target.shape.length !== source.shape.length || target.shape.some((d, i) => d !== source.shape[i])) {
        throw new StrictLoadError(`size mismatch for ${key}: the checkpoint has shape [${source.shape.join(", ")}], the model has [${target.shape.join(", ")}]. Load a checkpoint of the same architecture, or transform it with loadRaw's \`map\`.`, { subject: key });
      }
      plan.push({ target: variable, source, key });
    }
    await assignAll(ctx.backend, plan);
  },
};
