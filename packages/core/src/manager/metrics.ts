import { describe } from "../capabilities.js";
import { InvalidArgumentError } from "../errors.js";

/** Metric values by name, as passed to `CheckpointManager.save`. */
export type Metrics = Readonly<Record<string, number>>;

/** Checks user metrics: a plain object of numbers (NaN and infinities allowed: a diverged loss is a fact worth keeping). */
export function checkMetrics(metrics: unknown): Metrics {
  if (metrics === undefined) return {};
  if (typeof metrics !== "object" || metrics === null || Array.isArray(metrics)) {
    throw new InvalidArgumentError(`metrics must be an object of numbers such as { loss: 0.12 }, got ${describe(metrics)}.`);
  }
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(metrics)) {
    if (typeof v !== "number") throw new InvalidArgumentError(`metric "${k}" must be a number, got ${describe(v)}; pass a plain number (e.g. (await loss.data())[0]).`);
    out[k] = v;
  }
  return out;
}

/** JSON cannot hold NaN or infinities; they travel as strings. */
export function encodeMetrics(metrics: Metrics): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  for (const [k, v] of Object.entries(metrics)) out[k] = Number.isFinite(v) ? v : String(v);
  return out;
}

/** The inverse of {@link encodeMetrics}; anything else in a (possibly damaged) sidecar is dropped. */
export function decodeMetrics(value: unknown): Metrics {
  const out: Record<string, number> = {};
  if (typeof value !== "object" || value === null || Array.isArray(value)) return out;
  for (const [k, v] of Object.entries(value)) {
    if (typeof v === "number") out[k] = v;
    else if (v === "NaN" || v === "Infinity" || v === "-Infinity") out[k] = Number(v);
  }
  return out;
}

/**
 * Orders two metric values from best to worst. A missing or NaN value is worst, as in Lightning's
 * ModelCheckpoint, so a checkpoint without the metric is never kept over one that has it.
 */
export function compareMetric(a: number | undefined, b: number | undefined, mode: "min" | "max"): number {
  const bad = (v: number | undefined) => v === undefined || Number.isNaN(v);
  if (bad(a) || bad(b)) return bad(a) === bad(b) ? 0 : bad(a) ? 1 : -1;
  return mode === "min" ? a! - b! || 0 : b! - a! || 0;
}
