import { InvalidArgumentError } from "../../errors.js";

/** The part of a tfjs-layers `LayerVariable` savepoint uses. */
export interface LayerVariableLike {
  readonly name: string;
  readonly originalName?: string;
  readonly trainable: boolean;
  read(): unknown;
}

/** The part of a tfjs-layers `Layer` / `LayersModel` savepoint uses. */
export interface LayerLike {
  readonly name: string;
  getClassName(): string;
  readonly weights: LayerVariableLike[];
  readonly layers?: LayerLike[];
  readonly trainableWeights?: LayerVariableLike[];
}

/** One weight of a model under its stable state-dict key. */
export interface ModelParameter {
  readonly key: string;
  readonly variable: LayerVariableLike;
}

/** True for a tfjs-layers model (Sequential or functional), recognised by shape. */
export function isLayersModel(value: unknown): value is LayerLike {
  const v = value as Partial<LayerLike> & { getWeights?: unknown; setWeights?: unknown };
  return (
    typeof value === "object" &&
    value !== null &&
    Array.isArray(v.layers) &&
    typeof v.getWeights === "function" &&
    typeof v.setWeights === "function" &&
    typeof v.getClassName === "function" &&
    Array.isArray(v.weights)
  );
}

function snakeCase(name: string): string {
  return name
    .replace(/(.)([A-Z][a-z0-9]+)/g, "$1_$2")
    .replace(/([a-z])([A-Z])/g, "$1_$2")
    .toLowerCase();
}

/**
 * tfjs names unnamed layers `dense_Dense3` and unnamed models `sequential7`, with counters global
 * to the process; such names must not reach the keys, or a second instance of the same model
 * would not load the first one's checkpoint.
 */
function isGeneratedName(layer: LayerLike): boolean {
  const cls = layer.getClassName();
  return generatedNamePatterns(cls).some((re) => re.test(layer.name));
}

/** Per class, built once: a model of thousands of layers would otherwise build two per layer per walk. */
const patternsByClass = new Map<string, readonly RegExp[]>();

function generatedNamePatterns(cls: string): readonly RegExp[] {
  let patterns = patternsByClass.get(cls);
  if (!patterns) {
    patterns = [new RegExp(`^${escape(snakeCase(cls))}_${escape(cls)}\\d+$`), new RegExp(`^${escape(cls.toLowerCase())}\\d+$`)];
    patternsByClass.set(cls, patterns);
  }
  return patterns;
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * Stable keys for every weight of a model, in `model.weights` order: a layer you named keeps its
 * name; an unnamed one is called after its class, numbered within its model as Keras does
 * (`dense`, `dense_1`, ...). The weight's own name follows: `dense_1.kernel`, `batch_normalization.moving_mean`.
 * Nested models add a level: `encoder.dense.kernel`.
 */
export function modelParameters(model: LayerLike): ModelParameter[] {
  const out: ModelParameter[] = [];
  const seen = new Set<string>();
  const walk = (container: LayerLike, prefix: string) => {
    const perClass = new Map<string, number>();
    for (const layer of container.layers ?? []) {
      let key = layer.name;
      if (isGeneratedName(layer)) {
        const base = snakeCase(layer.getClassName());
        const n = perClass.get(base) ?? 0;
        perClass.set(base, n + 1);
        key = n === 0 ? base : `${base}_${n}`;
      }
      const layerKey = prefix + key;
      if (Array.isArray(layer.layers)) {
        walk(layer, `${layerKey}.`);
        continue;
      }
      for (const variable of layer.weights) {
        const original = variable.originalName ?? variable.name;
        const short = original.startsWith(`${layer.name}/`) ? original.slice(layer.name.length + 1) : original.slice(original.lastIndexOf("/") + 1);
        let k = `${layerKey}.${short.replace(/\//g, ".")}`;
        for (let i = 1; seen.has(k); i++) k = `${layerKey}.${short}_${i}`;
        seen.add(k);
        out.push({ key: k, variable });
      }
    }
  };
  walk(model, "");
  if (out.length === 0 && model.weights.length > 0) {
    throw new InvalidArgumentError(`model ${model.name} has weights but no layers savepoint can walk.`);
  }
  return out;
}

/** Trainable parameters in the order tfjs hands them to the optimizer (`model.trainableWeights`). */
export function trainableParameters(model: LayerLike): { key: string; variable: unknown; name: string }[] {
  const byVariable = new Map(modelParameters(model).map((p) => [p.variable, p.key]));
  return (model.trainableWeights ?? model.weights.filter((w) => w.trainable)).map((v) => {
    const key = byVariable.get(v);
    if (key === undefined) throw new InvalidArgumentError(`trainable weight ${v.name} of model ${model.name} is not among its layers' weights.`);
    const variable = v.read() as { name: string };
    return { key, variable, name: variable.name };
  });
}
