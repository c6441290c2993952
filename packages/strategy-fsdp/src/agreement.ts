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
  type Collective,
} from "@savepoint/core";

/** What each rank reports after its part of an operation (plain data, it crosses the collective). */
export interface Outcome {
  error?: { name: string; message: string };
}

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

export function describeError(err: unknown): { name: string; message: string } {
  if (err instanceof Error) return { name: err.name, message: err.message };
  return { name: "Error", message: String(err) };
}

/**
 * Gathers every rank's outcome of a step, so that all ranks go on or all fail together. Throws
 * this rank's own error if it failed, else an error of the failing rank's class naming it;
 * a rank that is missing or dead surfaces as the collective's CollectiveTimeoutError unless this
 * rank has its own error to report.
 */
export async function agree<T extends object>(collective: Collective, tag: string, outcome: T, local: unknown, timeoutMs: number | undefined, step?: "write"): Promise<(T & Outcome)[]> {
  let all: (T & Outcome)[];
  try {
    all = await collective.allGather<T & Outcome>(tag, local ? { ...outcome, error: describeError(local) } : outcome, timeoutMs === undefined ? undefined : { timeoutMs });
  } catch (err) {
    throw local ?? err;
  }
  if (local) throw local;
  const failed = all.findIndex((o) => o?.error);
  if (failed >= 0) {
    const e = all[failed]!.error!;
    const Ctor = ERRORS[e.name] ?? SavepointError;
    const what = step === "write" ? `rank ${failed} could not write its part of the checkpoint for \`${tag}\`` : `rank ${failed} failed in \`${tag}\``;
    throw new Ctor(`${what} (this is rank ${collective.rank}; no rank continues): ${e.message.replace(/^\[savepoint\] /, "")}`, { subject: `rank ${failed}` });
  }
  return all;
}
