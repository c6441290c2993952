import * as tf from "@tensorflow/tfjs-core";
import { InvalidArgumentError, StrictLoadError, UnsupportedFormatError } from "../../errors.js";
import { HostTensor } from "../../tensor/stored-tensor.js";
import { isTensorSource, type TensorSource } from "../../tensor/tensor-source.js";
import { isPlainObject } from "../../tree/plain.js";
import { asTuple, withIntKeys } from "../../tree/python-values.js";
import type { AdapterContext, StatefulAdapter } from "../stateful-adapter.js";
import { assignAll } from "../../backends/backend.js";
import { isTfjsVariable, tfjsDTypeFor } from "../../backends/tfjs/tfjs-tensors.js";

interface SlotVariable {
  originalName: string;
  variable: tf.Variable;
}

/** How one slot of one parameter is loaded: into the optimizer's existing variable, or a new one. */
interface SlotPlan {
  readonly index: number;
  readonly key: string;
  readonly source: TensorSource;
  readonly originalName: string;
  readonly reuse: SlotVariable | undefined;
}

/** How one tfjs optimizer class maps onto torch's optimizer state dict. */
interface OptimizerSpec {
  /** Slot arrays on the optimizer → torch state names, with tfjs's slot name suffix. */
  readonly slots: readonly { field: string; torch: string; suffix: string }[];
  /** Hyper-parameter fields → torch param_group keys. `betas` pairs beta1/beta2. */
  readonly hyper: readonly { field: string; torch: string }[];
  /** Scalar variables tfjs keeps besides the slots (exact values matter for bit-identical resume). */
  readonly scalars: readonly string[];
}

const lr = { field: "learningRate", torch: "lr" };
const eps = { field: "epsilon", torch: "eps" };
const SPECS: Record<string, OptimizerSpec> = {
  SGD: { slots: [], hyper: [lr], scalars: [] },
  Momentum: {
    slots: [{ field: "accumulations", torch: "momentum_buffer", suffix: "momentum" }],
    hyper: [lr, { field: "momentum", torch: "momentum" }, { field: "useNesterov", torch: "nesterov" }],
    scalars: [],
  },
  Adam: {
    slots: [
      { field: "accumulatedFirstMoment", torch: "exp_avg", suffix: "m" },
      { field: "accumulatedSecondMoment", torch: "exp_avg_sq", suffix: "v" },
    ],
    hyper: [lr, { field: "beta1", torch: "beta1" }, { field: "beta2", torch: "beta2" }, eps],
    scalars: ["accBeta1", "accBeta2"],
  },
  Adamax: {
    slots: [
      { field: "accumulatedFirstMoment", torch: "exp_avg", suffix: "m" },
      { field: "accumulatedWeightedInfNorm", torch: "exp_inf", suffix: "v" },
    ],
    hyper: [lr, { field: "beta1", torch: "beta1" }, { field: "beta2", torch: "beta2" }, eps, { field: "decay", torch: "decay" }],
    scalars: ["accBeta1", "iteration"],
  },
  Adagrad: {
    slots: [{ field: "accumulatedGrads", torch: "sum", suffix: "accumulator" }],
    hyper: [lr, { field: "initialAccumulatorValue", torch: "initial_accumulator_value" }],
    scalars: [],
  },
  Adadelta: {
    slots: [
      { field: "accumulatedGrads", torch: "square_avg", suffix: "accum_grad" },
      { field: "accumulatedUpdates", torch: "acc_delta", suffix: "accum_var" },
    ],
    hyper: [lr, { field: "rho", torch: "rho" }, eps],
    scalars: [],
  },
  RMSProp: {
    slots: [
      { field: "accumulatedMeanSquares", torch: "square_avg", suffix: "rms" },
      { field: "accumulatedMoments", torch: "momentum_buffer", suffix: "momentum" },
      { field: "accumulatedMeanGrads", torch: "grad_avg", suffix: "mg" },
    ],
    hyper: [lr, { field: "decay", torch: "alpha" }, { field: "momentum", torch: "momentum" }, eps, { field: "centered", torch: "centered" }],
    scalars: [],
  },
};

type Optimizer = tf.Optimizer & Record<string, unknown>;

function className(value: unknown): string | undefined {
  const v = value as { getClassName?: () => string; applyGradients?: unknown; minimize?: unknown };
  if (typeof v?.getClassName !== "function" || typeof v.applyGradients !== "function" || typeof v.minimize !== "function") return undefined;
  return v.getClassName();
}

/** The trainable parameters of every model in the state, in order: optimizer state is indexed by it. */
function parameterList(ctx: AdapterContext): { key: string; variable: unknown; name: string }[] {
  const out: { key: string; variable: unknown; name: string }[] = [];
  for (const [k, v] of Object.entries(ctx.state)) {
    const adapter = ctx.adapters.find(v);
    if (adapter?.parameters) for (const p of adapter.parameters(v)) out.push({ ...p, key: `${k}.${p.key}` });
  }
  return out;
}

function noModel(ctx: AdapterContext): never {
  throw new InvalidArgumentError(
    `the optimizer "${ctx.key}" has state for variables of no model in this state. Save and load it together with its model (\`{ model, ${ctx.key} }\`), or pass \`{ model }\` to loadRaw.`,
    { subject: ctx.key },
  );
}

/**
 * Every built-in tfjs optimizer (SGD, Momentum, Adam, Adamax, Adagrad, Adadelta, RMSProp) as a
 * torch-style state dict: `{ state: { [paramIndex]: { step, exp_avg, ... } }, param_groups: [{ lr, ..., params }] }`.
 * Parameter indices follow the trainable weights of the models in the same state. tfjs's own
 * counters (iterations, Adam's accumulated beta powers) ride along under `param_groups[0].tfjs`, so
 * a resumed run continues bit for bit.
 */
export const tfjsOptimizerAdapter: StatefulAdapter = {
  name: "tfjs optimizer",
  kind: "optimizer",
  matches(value) {
    const cls = className(value);
    return cls !== undefined && cls in SPECS;
  },

  async stateDict(value, ctx) {
    const opt = value as Optimizer;
    const cls = className(opt)!;
    const spec = SPECS[cls]!;
    const iterations = Number((opt as unknown as { iterations: number }).iterations ?? 0);
    const params = parameterList(ctx);
    const indexByName = new Map(params.map((p, i) => [p.name, i]));
    const state: Record<string, Record<string, unknown>> = {};
    for (const slot of spec.slots) {
      const entries = (opt[slot.field] as (SlotVariable | undefined)[] | undefined) ?? [];
      for (const entry of entries) {
        if (!entry) continue;
        const varName = entry.originalName.slice(0, entry.originalName.length - slot.suffix.length - 1);
        const index = indexByName.get(varName);
        if (index === undefined) noModel(ctx);
        const s = (state[String(index)] ??= { step: HostTensor.fromValues("float32", [], [iterations]) });
        s[slot.torch] = entry.variable;
      }
    }
    const group: Record<string, unknown> = {};
    for (const h of spec.hyper) {
      if (h.field === "beta2") continue;
      if (h.field === "beta1") group.betas = asTuple([opt.beta1, opt.beta2]);
      else group[h.torch] = opt[h.field];
    }
    const extras: Record<string, unknown> = { optimizer: cls, iterations };
    // Async reads: a synchronous read-back is not available on every backend (WebGPU in Node).
    for (const name of spec.scalars) extras[name] = (await (opt[name] as tf.Variable).data())[0];
    group.tfjs = extras;
    group.params = params.map((_, i) => i);
    return { state: withIntKeys(state), param_groups: [group] };
  },

  async loadStateDict(value, sd, ctx) {
    const opt = value as Optimizer;
    const cls = className(opt)!;
    const spec = SPECS[cls]!;
    const where = ctx.key;
    if (!isPlainObject(sd) || !isPlainObject(sd.state) || !Array.isArray(sd.param_groups)) {
      throw new StrictLoadError(`${where}: expected an optimizer state dict ({ state, param_groups }), got ${sd === null ? "null" : typeof sd}.`, { subject: where });
    }
    if (sd.param_groups.length !== 1 || !isPlainObject(sd.param_groups[0])) {
      throw new UnsupportedFormatError(`${where}: the checkpoint has ${sd.param_groups.length} parameter groups; a tfjs optimizer has exactly one.`, { subject: where });
    }
    const group = sd.param_groups[0];
    const extras = isPlainObject(group.tfjs) ? group.tfjs : {};
    if (typeof extras.optimizer === "string" && extras.optimizer !== cls) {
      throw new StrictLoadError(`${where}: the checkpoint holds ${extras.optimizer} state but the optimizer is ${cls}. Create a ${extras.optimizer} optimizer to resume.`, { subject: where });
    }
    const params = parameterList(ctx);
    // torch files index optimizer state by parameter position; FSDP full checkpoints (Lightning's
    // and ours) key it by parameter name instead. Accept both.
    const keyOf = new Map<number, string>();
    const byName = new Map<string, number>();
    params.forEach((p, i) => {
      byName.set(p.key, i);
      byName.set(p.key.slice(p.key.indexOf(".") + 1), i);
    });
    for (const k of Object.keys(sd.state)) {
      const i = /^(0|[1-9]\d*)$/.test(k) ? Number(k) : byName.get(k);
      if (i === undefined) throw new StrictLoadError(`${where}.state has an entry for "${k}", which is neither a parameter index nor the name of a trainable parameter (${params.slice(0, 4).map((p) => p.key).join(", ")}${params.length > 4 ? ", …" : ""}).`, { subject: `${where}.state.${k}` });
      keyOf.set(i, k);
    }
    const indices = [...keyOf.keys()].sort((a, b) => a - b);
    if (indices.length > 0 && params.length === 0) noModel(ctx);

    // Check everything before reading a tensor: a failure here leaves the optimizer untouched.
    // Slots the optimizer already has (same variable name, shape and dtype) are loaded in place,
    // so the optimizer's memory is never held twice; only missing ones are created.
    const plans: SlotPlan[][] = [];
    let step: number | undefined;
    for (const slot of spec.slots) {
      const current = (opt[slot.field] as (SlotVariable | undefined)[] | undefined) ?? [];
      const byName = new Map(current.filter((s): s is SlotVariable => !!s && !s.variable.isDisposed).map((s) => [s.originalName, s]));
      const plan: SlotPlan[] = [];
      for (const i of indices) {
        const entry = (sd.state as Record<string, unknown>)[keyOf.get(i)!];
        const param = params[i];
        const key = `${where}.state.${i}.${slot.torch}`;
        if (!param) throw new StrictLoadError(`${key}: parameter index ${i} does not exist; the model has ${params.length} trainable parameters.`, { subject: key });
        if (!isPlainObject(entry)) throw new StrictLoadError(`${where}.state.${i} is not an object.`, { subject: key });
        if (step === undefined && entry.step !== undefined) step = await scalarOf(entry.step, `${where}.state.${i}.step`, ctx);
        const source = entry[slot.torch];
        if (source === undefined) {
          // RMSProp keeps grad_avg only when centered, and torch omits momentum_buffer at momentum 0.
          continue;
        }
        if (!isTensorSource(source)) throw new StrictLoadError(`${key} is not a tensor.`, { subject: key });
        const target = ctx.backend.describe(param.variable);
        if (target.shape.join() !== source.shape.join()) {
          throw new StrictLoadError(`size mismatch for ${key}: the checkpoint has [${source.shape.join(", ")}], parameter ${param.key} has [${target.shape.join(", ")}].`, { subject: key });
        }
        const originalName = `${param.name}/${slot.suffix}`;
        const old = byName.get(originalName);
        const fits = old && old.variable.dtype === tfjsDTypeFor(source.dtype) && old.variable.shape.join() === source.shape.join();
        plan.push({ index: i, key, source, originalName, reuse: fits ? old : undefined });
      }
      plans.push(plan);
    }

    // Missing slots first: if one of their records fails, nothing has changed yet.
    const created: SlotVariable[] = [];
    const fresh = new Map<SlotPlan, SlotVariable>();
    try {
      for (const plan of plans) {
        for (const p of plan) {
          if (p.reuse) continue;
          const t = (await ctx.backend.create(p.source, p.key)) as tf.Tensor;
          const s = { originalName: p.originalName, variable: tf.variable(t, false) };
          t.dispose();
          created.push(s);
          fresh.set(p, s);
        }
      }
      // Then the existing slots, in place; a damaged record stops here with the slots before it
      // loaded and it and those after it untouched, as for a model's variables.
      await assignAll(
        ctx.backend,
        plans.flat().flatMap((p) => (p.reuse ? [{ target: p.reuse.variable, source: p.source, key: p.key }] : [])),
      );
    } catch (err) {
      for (const s of created) s.variable.dispose();
      throw err;
    }

    spec.slots.forEach((slot, k) => {
      const list: SlotVariable[] = [];
      for (const p of plans[k]!) list[p.index] = p.reuse ?? fresh.get(p)!;
      const kept = new Set(list);
      const old = (opt[slot.field] as (SlotVariable | undefined)[] | undefined) ?? [];
      for (const s of old) if (s && !kept.has(s)) s.variable.dispose();
      opt[slot.field] = list;
    });
    for (const h of spec.hyper) {
      const v = h.field === "beta1" ? (group.betas as number[] | undefined)?.[0] : h.field === "beta2" ? (group.betas as number[] | undefined)?.[1] : group[h.torch];
      if (v !== undefined && v !== null) setHyper(opt, h.field, v);
    }
    const iterations = typeof extras.iterations === "number" ? extras.iterations : (step ?? 0);
    (opt as unknown as { iterations_: number }).iterations_ = iterations;
    for (const name of spec.scalars) {
      const variable = opt[name] as tf.Variable;
      const saved = extras[name];
      const v = typeof saved === "number" ? saved : derivedScalar(opt, name, iterations);
      // assign shares the scalar's storage; the scalar itself is disposed, or it leaks per load.
      const t = tf.scalar(v, variable.dtype);
      variable.assign(t);
      t.dispose();
    }
  },
};

async function scalarOf(v: unknown, key: string, ctx: AdapterContext): Promise<number> {
  if (typeof v === "number") return v;
  if (isTensorSource(v)) {
    const t = (await ctx.backend.create(v, key)) as tf.Tensor;
    const n = (await t.data())[0] as number;
    t.dispose();
    return n;
  }
  if (isTfjsVariable(v)) return (await v.data())[0] as number;
  throw new StrictLoadError(`${key} is neither a number nor a tensor.`, { subject: key });
}

/** Values tfjs would derive from the step count, for checkpoints written by PyTorch. */
function derivedScalar(opt: Optimizer, name: string, iterations: number): number {
  switch (name) {
    case "accBeta1":
      return (opt.beta1 as number) ** (iterations + 1);
    case "accBeta2":
      return (opt.beta2 as number) ** (iterations + 1);
    default:
      return iterations;
  }
}

function setHyper(opt: Optimizer, field: string, v: unknown): void {
  if (field === "learningRate" && typeof opt.setLearningRate === "function") {
    (opt.setLearningRate as (x: number) => void).call(opt, v as number);
    return;
  }
  if (opt[field] === v) return;
  opt[field] = v;
  // Momentum caches its coefficient as a tensor; rebuild it when the value changes.
  if (field === "momentum" && opt.m instanceof Object && typeof (opt.m as tf.Tensor).dispose === "function") {
    (opt.m as tf.Tensor).dispose();
    opt.m = tf.keep(tf.scalar(v as number));
  }
}
