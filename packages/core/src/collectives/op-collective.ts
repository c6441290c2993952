import type { Collective, CollectiveOptions } from "./collective.js";
import { checkRank, type OpKind } from "./failure.js";

/**
 * A collective whose three operations are one call of {@link OpCollective.op}, so every transport
 * checks the broadcast root the same way and sends a broadcast's value from the root only.
 */
export abstract class OpCollective implements Collective {
  abstract readonly rank: number;
  abstract readonly worldSize: number;

  /** Runs one operation on every rank; `value` is `undefined` on the ranks that send nothing. @internal */
  protected abstract op(kind: OpKind, tag: string, value: unknown, root: number | undefined, options: CollectiveOptions | undefined): Promise<unknown>;

  async barrier(tag: string, options?: CollectiveOptions): Promise<void> {
    await this.op("barrier", tag, undefined, undefined, options);
  }

  async broadcast<T>(tag: string, value: T, root = 0, options?: CollectiveOptions): Promise<T> {
    checkRank(root, this.worldSize, "the broadcast root");
    return (await this.op("broadcast", tag, root === this.rank ? value : undefined, root, options)) as T;
  }

  async allGather<T>(tag: string, value: T, options?: CollectiveOptions): Promise<T[]> {
    return (await this.op("allGather", tag, value, undefined, options)) as T[];
  }
}
