import { afterEach } from "vitest";
import { createLocalGroup, type LocalCollective } from "../../src/collectives/local-group.js";

/**
 * A factory of in-process groups for one test file; every group it made is closed after each
 * test, so a failing test cannot leave ranks waiting on the next one.
 */
export function localGroups(defaultTimeoutMs = 300): (worldSize: number, timeoutMs?: number) => LocalCollective[] {
  let groups: LocalCollective[][] = [];
  afterEach(async () => {
    for (const g of groups) await Promise.all(g.map((c) => c.close()));
    groups = [];
  });
  return (worldSize, timeoutMs = defaultTimeoutMs) => {
    const g = createLocalGroup(worldSize, { timeoutMs });
    groups.push(g);
    return g;
  };
}
