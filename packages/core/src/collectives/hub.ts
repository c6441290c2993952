import { sameOperation, type CollectiveFailure, type OpCall, type OpKind } from "./failure.js";

/** A rank's request to the coordinator. */
export type ToHub =
  | { t: "hello"; rank: number; runId?: string; where?: string }
  | { t: "op"; seq: number; kind: OpKind; tag: string; root?: number; value?: unknown; timeoutMs: number }
  | { t: "bye" };

/** The coordinator's answer to a rank. */
export type FromHub =
  | { t: "welcome" }
  | { t: "reject"; message: string }
  | { t: "done"; seq: number; value?: unknown }
  | { t: "fail"; seq: number; failure: CollectiveFailure; late?: boolean };

interface OpState {
  readonly seq: number;
  readonly calls: Map<number, OpCall>;
  readonly values: Map<number, unknown>;
  deadline: number;
  timeoutMs: number;
  timer?: ReturnType<typeof setTimeout>;
}

const MAX_REMEMBERED_FAILURES = 4096;

/**
 * The coordinator of a group of ranks, independent of how messages travel (in-process calls,
 * worker_threads ports, TCP sockets). Operations are matched by their position in the sequence
 * every rank follows; the first rank to arrive starts the clock, and an operation either completes
 * on every rank or fails on every rank: on timeout (naming the ranks that did not arrive), when the
 * ranks called different operations, or as soon as a rank that has not arrived is gone.
 */
export class Hub {
  readonly #ops = new Map<number, OpState>();
  readonly #failed = new Map<number, CollectiveFailure>();
  readonly #gone = new Map<number, string>();
  readonly #where: Record<number, string> = {};
  #closed = false;

  constructor(
    readonly worldSize: number,
    private readonly send: (rank: number, message: FromHub) => void,
  ) {}

  /** Records where a rank runs, for messages. */
  setWhere(rank: number, where: string): void {
    this.#where[rank] = where;
  }

  /** Whether `rank` has exited or closed its collective. */
  isGone(rank: number): boolean {
    return this.#gone.has(rank);
  }

  /** Handles a message from `rank` (hello messages are the transport's business). */
  receive(rank: number, message: ToHub): void {
    if (this.#closed) return;
    if (message.t === "op") this.#submit(rank, message);
    else if (message.t === "bye") this.rankGone(rank, "closed its collective (its script finished or called close())");
  }

  /**
   * Marks `rank` as gone (exited, killed, disconnected): every pending operation it has not joined
   * fails at once, and so does every later one.
   */
  rankGone(rank: number, why: string): void {
    if (this.#closed || this.#gone.has(rank)) return;
    this.#gone.set(rank, why);
    for (const op of [...this.#ops.values()]) {
      if (!op.calls.has(rank)) this.#fail(op, this.#goneFailure(op));
    }
  }

  /** Stops every timer. Pending operations stay unanswered. */
  close(): void {
    this.#closed = true;
    for (const op of this.#ops.values()) clearTimeout(op.timer);
    this.#ops.clear();
  }

  #submit(rank: number, m: Extract<ToHub, { t: "op" }>): void {
    const failed = this.#failed.get(m.seq);
    if (failed) {
      this.send(rank, { t: "fail", seq: m.seq, failure: failed, late: true });
      return;
    }
    let op = this.#ops.get(m.seq);
    if (!op) {
      op = { seq: m.seq, calls: new Map(), values: new Map(), deadline: Infinity, timeoutMs: m.timeoutMs };
      this.#ops.set(m.seq, op);
    }
    if (op.calls.has(rank)) return; // a duplicate cannot come from a well-behaved client
    const call: OpCall = { rank, kind: m.kind, tag: m.tag, ...(m.kind === "broadcast" ? { root: m.root } : {}) };
    op.calls.set(rank, call);
    if (m.kind === "allGather" || (m.kind === "broadcast" && m.root === rank)) op.values.set(rank, m.value);
    const first = op.calls.values().next().value as OpCall;
    if (!sameOperation(first, call)) {
      this.#fail(op, { reason: "mismatch", seq: op.seq, missing: this.#missing(op), calls: [...op.calls.values()], where: this.#whereOrUndefined() });
      return;
    }
    if ([...this.#gone.keys()].some((r) => !op.calls.has(r))) {
      this.#fail(op, this.#goneFailure(op));
      return;
    }
    if (op.calls.size === this.worldSize) {
      this.#complete(op);
      return;
    }
    const deadline = Date.now() + m.timeoutMs;
    if (deadline < op.deadline) {
      op.deadline = deadline;
      op.timeoutMs = m.timeoutMs;
      clearTimeout(op.timer);
      const o = op;
      op.timer = setTimeout(() => this.#fail(o, { reason: "timeout", seq: o.seq, missing: this.#missing(o), calls: [...o.calls.values()], timeoutMs: o.timeoutMs, where: this.#whereOrUndefined() }), m.timeoutMs);
    }
  }

  #complete(op: OpState): void {
    clearTimeout(op.timer);
    this.#ops.delete(op.seq);
    const first = op.calls.values().next().value as OpCall;
    let value: unknown;
    if (first.kind === "allGather") value = Array.from({ length: this.worldSize }, (_, r) => op.values.get(r));
    else if (first.kind === "broadcast") value = op.values.get(first.root!);
    // One message object for every rank: a transport can encode it once (a gather of weights is large).
    const done: FromHub = { t: "done", seq: op.seq, value };
    for (const r of op.calls.keys()) this.send(r, done);
  }

  #fail(op: OpState, failure: CollectiveFailure): void {
    clearTimeout(op.timer);
    this.#ops.delete(op.seq);
    this.#failed.set(op.seq, failure);
    if (this.#failed.size > MAX_REMEMBERED_FAILURES) this.#failed.delete(this.#failed.keys().next().value as number);
    for (const r of op.calls.keys()) this.send(r, { t: "fail", seq: op.seq, failure });
  }

  #missing(op: OpState): number[] {
    return Array.from({ length: this.worldSize }, (_, r) => r).filter((r) => !op.calls.has(r));
  }

  #goneFailure(op: OpState): CollectiveFailure {
    const gone = [...this.#gone].filter(([r]) => !op.calls.has(r)).map(([rank, why]) => ({ rank, why }));
    return { reason: "gone", seq: op.seq, missing: this.#missing(op), calls: [...op.calls.values()], gone, where: this.#whereOrUndefined() };
  }

  #whereOrUndefined(): Record<number, string> | undefined {
    return Object.keys(this.#where).length > 0 ? { ...this.#where } : undefined;
  }
}
