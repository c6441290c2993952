import { checkWorld } from "./failure.js";
import { HubCollective, type HubCollectiveOptions } from "./hub-collective.js";
import { Hub, type FromHub, type ToHub } from "./hub.js";

/** Options of {@link createLocalGroup}. */
export interface LocalGroupOptions extends HubCollectiveOptions {}

/**
 * `worldSize` ranks inside one JavaScript thread, for tests and conformance suites: each rank is
 * a {@link Collective} with the same semantics as the multi-process ones (timeouts naming the
 * missing ranks, all-or-nothing operations, a closed rank failing the others at once). Values are
 * structured-cloned, so ranks never share objects.
 *
 * @example
 * ```ts
 * const [c0, c1] = createLocalGroup(2, { timeoutMs: 1000 });
 * await Promise.all([c0.barrier("start"), c1.barrier("start")]);
 * ```
 */
export function createLocalGroup(worldSize: number, options: LocalGroupOptions = {}): LocalCollective[] {
  checkWorld(0, worldSize);
  const members: LocalCollective[] = [];
  const hub = new Hub(worldSize, (rank, message) => {
    const copy = structuredClone(message);
    queueMicrotask(() => members[rank]!.deliver(copy));
  });
  for (let r = 0; r < worldSize; r++) members.push(new LocalCollective(r, worldSize, hub, options));
  return members;
}

/** One rank of a {@link createLocalGroup} group. */
export class LocalCollective extends HubCollective {
  readonly transport = "in-process group";
  readonly #hub: Hub;

  constructor(rank: number, worldSize: number, hub: Hub, options: LocalGroupOptions) {
    super(rank, worldSize, options);
    this.#hub = hub;
  }

  protected override get remoteCoordinator(): boolean {
    return false;
  }

  protected post(message: ToHub): void {
    const copy = structuredClone(message);
    queueMicrotask(() => this.#hub.receive(this.rank, copy));
  }

  /** @internal */
  deliver(message: FromHub): void {
    this.receive(message);
  }
}
