import type { CheckpointInfo } from "./folder.js";
import { compareMetric } from "./metrics.js";
import type { KeepBest } from "./options.js";

/** What retention keeps; without `keepLast` and `keepBest` it keeps everything. */
export interface RetentionPolicy {
  readonly keepLast?: number;
  readonly keepBest?: KeepBest;
}

/**
 * The checkpoints retention would delete. Never chosen: the newest valid checkpoint (highest step
 * not known to be damaged), the steps in `protect` (the one just committed), and checkpoints known
 * to be damaged, which are left for a person to inspect and do not count towards `keepLast`.
 */
export function checkpointsToRemove(
  checkpoints: readonly CheckpointInfo[],
  policy: RetentionPolicy,
  protect: ReadonlySet<number>,
  damaged: ReadonlySet<string> = new Set(),
): CheckpointInfo[] {
  if (policy.keepLast === undefined && policy.keepBest === undefined) return [];
  const valid = checkpoints.filter((c) => !damaged.has(c.path)).sort((a, b) => a.step - b.step);
  const keep = new Set<number>(protect);
  const newest = valid[valid.length - 1];
  if (newest) keep.add(newest.step);
  if (policy.keepLast !== undefined) for (const c of valid.slice(-policy.keepLast)) keep.add(c.step);
  const best = policy.keepBest;
  if (best) {
    // Best first; among equals the newer one wins, as a rerun of the same value supersedes.
    const ranked = [...valid].sort((a, b) => compareMetric(a.metrics[best.metric], b.metrics[best.metric], best.mode) || b.step - a.step);
    for (const c of ranked.slice(0, best.k)) keep.add(c.step);
  }
  return valid.filter((c) => !keep.has(c.step));
}
