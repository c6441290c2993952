/** Options of every collective call. */
export interface CollectiveOptions {
  /** Milliseconds to wait for every rank before failing with `CollectiveTimeoutError`. */
  timeoutMs?: number;
}

/**
 * How ranks agree: small objects only (paths, key lists, plans), never tensor bytes.
 * `tag` names the operation in progress (e.g. `"save ckpt/last.ckpt"`), so that a rank that
 * never arrives is reported with what the others were doing.
 */
export interface Collective {
  readonly rank: number;
  readonly worldSize: number;
  /** Resolves once every rank reached the barrier with the same tag. */
  barrier(tag: string, options?: CollectiveOptions): Promise<void>;
  /** Every rank receives the value passed by `root`. */
  broadcast<T>(tag: string, value: T, root?: number, options?: CollectiveOptions): Promise<T>;
  /** Every rank receives the values of all ranks, in rank order. */
  allGather<T>(tag: string, value: T, options?: CollectiveOptions): Promise<T[]>;
  /** Releases connections or threads. */
  close?(): Promise<void>;
}

export const COLLECTIVE_REQUIRED = ["rank", "worldSize", "barrier", "broadcast", "allGather"] as const;

/** Whether `value` looks like a {@link Collective} (has `allGather` and `barrier`), as opposed to an options object. */
export function isCollective(value: unknown): value is Collective {
  return typeof value === "object" && value !== null && typeof (value as Collective).allGather === "function" && typeof (value as Collective).barrier === "function";
}

/** The collective of a single process: every operation completes at once. */
export class SingleProcessCollective implements Collective {
  readonly rank = 0;
  readonly worldSize = 1;
  async barrier(): Promise<void> {}
  async broadcast<T>(_tag: string, value: T): Promise<T> {
    return value;
  }
  async allGather<T>(_tag: string, value: T): Promise<T[]> {
    return [value];
  }
}
