import { CollectiveTimeoutError, InvalidArgumentError } from "../errors.js";
import type { CollectiveOptions } from "./collective.js";
import { checkTag, checkTimeout, checkWorld, failureError, resolveTimeout, type OpKind } from "./failure.js";
import type { FromHub, ToHub } from "./hub.js";
import { OpCollective } from "./op-collective.js";

interface Pending {
  readonly tag: string;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
  timer?: ReturnType<typeof setTimeout>;
}

/** Options shared by the collectives that talk to a coordinator. */
export interface HubCollectiveOptions {
  /** Default limit of each operation in ms. @default SAVEPOINT_TIMEOUT_MS, else 60000 */
  timeoutMs?: number;
}

/** How long past its own limit a rank waits for a silent coordinator before giving up alone. */
const COORDINATOR_GRACE_MS = 5_000;

/**
 * A rank of a group coordinated by a {@link Hub}: sends each operation with its sequence number
 * and waits for the answer. Subclasses carry the messages (in-process calls, ports, sockets).
 */
export abstract class HubCollective extends OpCollective {
  readonly rank: number;
  readonly worldSize: number;
  /** Default limit of each operation in ms. */
  readonly timeoutMs: number;
  /** What carries the messages, for error messages ("worker threads", "launcher at 127.0.0.1:4000"). */
  abstract readonly transport: string;
  #seq = 0;
  readonly #pending = new Map<number, Pending>();
  #brokenWhy?: string;
  #closed = false;

  constructor(rank: number, worldSize: number, options: HubCollectiveOptions = {}) {
    super();
    ({ rank: this.rank, worldSize: this.worldSize } = checkWorld(rank, worldSize));
    this.timeoutMs = resolveTimeout(options.timeoutMs);
  }

  /** Sends a message to the coordinator; throws synchronously when the value cannot be sent. */
  protected abstract post(message: ToHub): void;

  /** Called when the first operation starts and the last one ends (to ref/unref handles). */
  protected activeChanged(_active: boolean): void {}

  /** Whether to keep a local timer in case the coordinator itself goes silent. */
  protected get remoteCoordinator(): boolean {
    return true;
  }

  /** Leaves the group: the other ranks' pending and later operations fail at once, naming this rank. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.post({ t: "bye" });
    } catch {
      // already disconnected
    }
    this.disconnected(`rank ${this.rank} closed its collective`);
    await this.shutdown();
  }

  /** Releases the transport after `close`. */
  protected async shutdown(): Promise<void> {}

  /** Handles an answer of the coordinator. */
  protected receive(message: FromHub): void {
    if (message.t === "reject") {
      this.disconnected(message.message);
      return;
    }
    if (message.t !== "done" && message.t !== "fail") return;
    const p = this.#pending.get(message.seq);
    if (!p) return;
    this.#settle(message.seq);
    if (message.t === "done") p.resolve(message.value);
    else p.reject(failureError(message.failure, { rank: this.rank, tag: p.tag, transport: this.transport, late: message.late }));
  }

  /** The coordinator cannot be reached any more: every pending and later operation fails with `why`. */
  protected disconnected(why: string): void {
    this.#brokenWhy ??= why;
    for (const [seq, p] of [...this.#pending]) {
      this.#settle(seq);
      p.reject(this.#lostError(p.tag, why));
    }
  }

  #lostError(tag: string, why: string): CollectiveTimeoutError {
    return new CollectiveTimeoutError(
      `rank ${this.rank} lost the coordinator of the group during \`${tag}\`: ${why} (${this.transport}). If the launcher or another rank was stopped, restart the job from the last complete checkpoint.`,
      { subject: `rank ${this.rank}` },
    );
  }

  #settle(seq: number): void {
    const p = this.#pending.get(seq);
    if (!p) return;
    clearTimeout(p.timer);
    this.#pending.delete(seq);
    if (this.#pending.size === 0) this.activeChanged(false);
  }

  protected op(kind: OpKind, tag: string, value: unknown, root: number | undefined, options: CollectiveOptions | undefined): Promise<unknown> {
    checkTag(tag);
    const timeoutMs = options?.timeoutMs === undefined ? this.timeoutMs : checkTimeout(options.timeoutMs, "timeoutMs");
    if (this.#closed) return Promise.reject(new CollectiveTimeoutError(`\`${tag}\` was called on rank ${this.rank} after its collective was closed. Create a new one (or do not close it before the last save/load).`, { subject: `rank ${this.rank}` }));
    if (this.#brokenWhy !== undefined) return Promise.reject(this.#lostError(tag, this.#brokenWhy));
    const seq = this.#seq++;
    try {
      this.post({ t: "op", seq, kind, tag, root, value, timeoutMs });
    } catch (err) {
      this.#seq--; // nothing was sent: keep this rank's sequence in step with the others
      throw new InvalidArgumentError(
        `the value passed to ${kind} \`${tag}\` cannot be sent to the other ranks: ${(err as Error).message}. Collectives carry plain data (numbers, strings, arrays, plain objects, typed arrays), not functions or class instances.`,
        { cause: err },
      );
    }
    return new Promise<unknown>((resolve, reject) => {
      const p: Pending = { tag, resolve, reject };
      if (this.#pending.size === 0) this.activeChanged(true);
      this.#pending.set(seq, p);
      if (this.remoteCoordinator) {
        p.timer = setTimeout(() => {
          this.#settle(seq);
          reject(
            new CollectiveTimeoutError(
              `\`${tag}\` on rank ${this.rank} got no answer from the coordinator within ${timeoutMs + COORDINATOR_GRACE_MS} ms (${this.transport}); the ranks that did not arrive are unknown because the coordinator itself is silent. Check that the launcher is still running.`,
              { subject: `rank ${this.rank}` },
            ),
          );
        }, timeoutMs + COORDINATOR_GRACE_MS);
      }
    });
  }
}
