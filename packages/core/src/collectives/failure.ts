import { CollectiveTimeoutError, InvalidArgumentError } from "../errors.js";

/** The three collective operations. */
export type OpKind = "barrier" | "broadcast" | "allGather";

/** One rank's call of an operation, as the coordinator saw it. */
export interface OpCall {
  readonly rank: number;
  readonly kind: OpKind;
  readonly tag: string;
  readonly root?: number;
}

/**
 * Why an operation could not complete, as the coordinator (or, with Redis, the rank that gave up)
 * describes it to every rank that took part. Each rank turns it into an error with its own tag.
 */
export interface CollectiveFailure {
  readonly reason: "timeout" | "gone" | "mismatch";
  /** Position of the operation in the sequence every rank follows. */
  readonly seq: number;
  /** Ranks that had not called the operation. */
  readonly missing: number[];
  /** What the ranks that did arrive called. */
  readonly calls: OpCall[];
  /** For `gone`: ranks that exited or closed their collective, and how. */
  readonly gone?: { rank: number; why: string }[];
  /** For `timeout`: the limit that expired. */
  readonly timeoutMs?: number;
  /** Where each rank runs (`pid 123 on host-a`), when known. */
  readonly where?: Record<number, string>;
}

/** Default limit of one collective operation: 60 s, or `SAVEPOINT_TIMEOUT_MS`. */
export const DEFAULT_TIMEOUT_MS = 60_000;

/** The default timeout: `explicit`, else `SAVEPOINT_TIMEOUT_MS` from the environment, else 60 s. */
export function resolveTimeout(explicit?: number): number {
  if (explicit !== undefined) return checkTimeout(explicit, "timeoutMs");
  const env = typeof process !== "undefined" ? process.env?.SAVEPOINT_TIMEOUT_MS : undefined;
  if (env !== undefined && env !== "") return checkTimeout(Number(env), "SAVEPOINT_TIMEOUT_MS");
  return DEFAULT_TIMEOUT_MS;
}

export function checkTimeout(ms: unknown, what: string): number {
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms <= 0 || ms > 2 ** 31 - 1) {
    throw new InvalidArgumentError(`${what} must be a positive number of milliseconds (at most ${2 ** 31 - 1}), got ${String(ms)}.`, { subject: what });
  }
  return Math.ceil(ms);
}

/**
 * The first word of a tag names the operation (`save`, `load`, `gradients`): it must be the same on
 * every rank, so that a rank that skipped a `save` is not matched with another rank's next
 * operation. The rest of the tag (a path that differs per rank) is only for messages.
 */
export function tagVerb(tag: string): string {
  return tag.trim().split(/\s+/, 1)[0] ?? "";
}

/** Whether two calls of the same position in the sequence are the same operation. */
export function sameOperation(a: { kind: OpKind; tag: string; root?: number }, b: { kind: OpKind; tag: string; root?: number }): boolean {
  return a.kind === b.kind && a.root === b.root && tagVerb(a.tag) === tagVerb(b.tag);
}

export function checkTag(tag: unknown): asserts tag is string {
  if (typeof tag !== "string") throw new InvalidArgumentError(`a collective tag must be a string naming the operation (e.g. "save ckpt/last.ckpt"), got ${typeof tag}.`);
}

export function checkRank(value: unknown, worldSize: number, what: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value >= worldSize) {
    throw new InvalidArgumentError(`${what} must be an integer in [0, ${worldSize - 1}] for a world of ${worldSize}, got ${String(value)}.`, { subject: what });
  }
  return value;
}

export function checkWorld(rank: unknown, worldSize: unknown): { rank: number; worldSize: number } {
  if (typeof worldSize !== "number" || !Number.isInteger(worldSize) || worldSize < 1) {
    throw new InvalidArgumentError(`the world size must be a positive integer, got ${String(worldSize)}.`, { subject: "worldSize" });
  }
  return { rank: checkRank(rank, worldSize, "rank"), worldSize };
}

/** "rank 2", "ranks 1, 3". */
export function ranksPhrase(ranks: readonly number[], where?: Record<number, string>): string {
  const one = (r: number) => (where?.[r] ? `${r} (${where[r]})` : String(r));
  return ranks.length === 1 ? `rank ${one(ranks[0]!)}` : `ranks ${ranks.map(one).join(", ")}`;
}

const SAME_CALLS =
  "Every rank must make the same collective calls in the same order: call save/load/barrier on every rank, not inside `if (rank === 0)`.";

/**
 * The error a rank raises for a failed operation: names the ranks that did not arrive (and where
 * they run), the operation's tag on this rank, and what to do.
 */
export function failureError(failure: CollectiveFailure, self: { rank: number; tag: string; transport: string; late?: boolean }): CollectiveTimeoutError {
  const f = failure;
  const arrived = f.calls.map((c) => c.rank).sort((a, b) => a - b);
  const theirTag = f.calls.find((c) => c.rank !== self.rank)?.tag;
  const doing = `\`${self.late && theirTag !== undefined ? theirTag : self.tag}\``;
  let message: string;
  let subject: number | undefined;
  if (f.reason === "gone") {
    const gone = f.gone ?? [];
    subject = gone[0]?.rank;
    const who = gone.map((g) => `rank ${g.rank}${f.where?.[g.rank] ? ` (${f.where[g.rank]})` : ""} ${g.why}`).join("; ");
    const waiting = arrived.length > 0 ? ` while ${ranksPhrase(arrived)} waited in ${doing}` : ` before ${doing}`;
    message = `${who}${waiting}, so the operation cannot complete (${self.transport}). Look at the output of ${ranksPhrase(gone.map((g) => g.rank))} for the cause, then restart the job from the last complete checkpoint.`;
  } else if (f.reason === "timeout") {
    subject = f.missing[0];
    const waited = arrived.length > 0 ? `; ${ranksPhrase(arrived)} waited` : "";
    message =
      `${ranksPhrase(f.missing, f.where)} did not join ${doing} within ${f.timeoutMs ?? "?"} ms (collective operation #${f.seq}${waited}; ${self.transport}). ` +
      `${SAME_CALLS} If ${f.missing.length === 1 ? "that rank is" : "those ranks are"} only slow, raise the limit with the \`timeoutMs\` option or SAVEPOINT_TIMEOUT_MS.`;
  } else {
    const calls = [...f.calls].sort((a, b) => a.rank - b.rank);
    subject = calls.find((c) => c.kind !== calls[0]!.kind || c.root !== calls[0]!.root)?.rank ?? calls[0]?.rank;
    const list = calls.map((c) => `rank ${c.rank} called ${c.kind}${c.kind === "broadcast" ? ` from root ${c.root}` : ""} \`${c.tag}\``).join(", ");
    message = `the ranks called different collective operations as operation #${f.seq}: ${list} (${self.transport}). ${SAME_CALLS}`;
  }
  if (self.late) message = `rank ${self.rank} reached \`${self.tag}\` (collective operation #${f.seq}) after the other ranks had given up on it: ${message}`;
  return new CollectiveTimeoutError(message, { subject: subject === undefined ? undefined : `rank ${subject}` });
}

/** How a process or thread ended, for messages: "exited with code 1", "was killed by SIGKILL". */
export function describeExit(code: number | null, signal: string | null): string {
  if (signal) return `was killed by ${signal}`;
  if (code === 0) return "exited (code 0) without joining";
  return `exited with code ${code}`;
}
