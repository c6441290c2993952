import {
  CheckpointNotFoundError,
  CheckpointWriteError,
  CollectiveTimeoutError,
  CorruptCheckpointError,
  InterfaceError,
  InvalidArgumentError,
  SavepointError,
  StrictLoadError,
  UnsafeCheckpointError,
  UnsupportedFormatError,
} from "../errors.js";
import type { Collective } from "./collective.js";

/** An error as it crosses the collective: plain data, rebuilt by class name on the other ranks. */
export interface DescribedError {
  name: string;
  message: string;
}

/** What each rank reports after its part of a step (plain data, it crosses the collective). */
export interface AgreeOutcome {
  /** Set when this rank failed. */
  error?: DescribedError;
}

/** Options of {@link agree}. */
export interface AgreeOptions {
  /** Limit of this step in ms. @default the collective's own limit */
  timeoutMs?: number;
  /**
   * How the failing rank is introduced: `rank N <failure> \`tag\``.
   * @default "failed in"
   */
  failure?: string;
}

// The classes a failing rank's error is rebuilt as on the others; anything else is a SavepointError.
const ERRORS: Record<string, new (message: string, options?: { cause?: unknown; subject?: string }) => SavepointError> = {
  CheckpointNotFoundError,
  StrictLoadError,
  CorruptCheckpointError,
  UnsupportedFormatError,
  UnsafeCheckpointError,
  InvalidArgumentError,
  InterfaceError,
  CheckpointWriteError,
  CollectiveTimeoutError,
};

/**
 * An error as plain data, so it can be sent to the other ranks.
 *
 * @example
 * ```ts
 * describeError(new StrictLoadError("missing key")); // { name: "StrictLoadError", message: "[savepoint] missing key" }
 * ```
 */
export function describeError(err: unknown): DescribedError {
  if (err instanceof Error) return { name: err.name, message: err.message };
  return { name: "Error", message: String(err) };
}

/**
 * Gathers every rank's outcome of a step, so that all ranks go on or all fail together. Throws
 * this rank's own error (`local`) if it failed, else an error of the failing rank's class naming
 * that rank; a rank that is missing or dead surfaces as the collective's CollectiveTimeoutError
 * unless this rank has its own error to report. Every rank must call it with the same `tag`.
 *
 * @param outcome What this rank shares when it succeeds (e.g. `{ path }`); its error is added when `local` is set.
 * @param local This rank's error, or `undefined` when its part succeeded.
 * @returns Every rank's outcome, in rank order.
 *
 * @example
 * ```ts
 * let local: unknown;
 * try {
 *   await writeMyPart();
 * } catch (err) {
 *   local = err;
 * }
 * const all = await agree(collective, `save ${path}`, { path }, local, { timeoutMs: 60_000 });
 * const target = all[0]!.path; // rank 0's path, once every rank succeeded
 * ```
 */
export async function agree<T extends object>(collective: Collective, tag: string, outcome: T, local: unknown, options: AgreeOptions = {}): Promise<(T & AgreeOutcome)[]> {
  const { timeoutMs, failure = "failed in" } = options;
  let all: (T & AgreeOutcome)[];
  try {
    all = await collective.allGather<T & AgreeOutcome>(tag, local ? { ...outcome, error: describeError(local) } : outcome, timeoutMs === undefined ? undefined : { timeoutMs });
  } catch (err) {
    throw local ?? err;
  }
  if (local) throw local;
  const failed = all.findIndex((o) => o?.error);
  if (failed >= 0) {
    const e = all[failed]!.error!;
    const Ctor = ERRORS[e.name] ?? SavepointError;
    throw new Ctor(`rank ${failed} ${failure} \`${tag}\` (this is rank ${collective.rank}; no rank continues): ${e.message.replace(/^\[savepoint\] /, "")}`, { subject: `rank ${failed}` });
  }
  return all;
}
