import { describe, expect, it } from "vitest";
import { agree, describeError } from "../../src/collectives/agree.js";
import { CollectiveTimeoutError, InvalidArgumentError, SavepointError, StrictLoadError } from "../../src/errors.js";
import { strategyCollective } from "../../src/strategies/strategy-collective.js";
import { localGroups } from "../helpers/local-groups.js";

const group = localGroups();

describe("agree", () => {
  it("returns every rank's outcome in rank order when all succeed", async () => {
    const g = group(3);
    const all = await Promise.all(g.map((c) => agree(c, "save p", { path: `p${c.rank}` }, undefined)));
    for (const a of all) expect(a).toEqual([{ path: "p0" }, { path: "p1" }, { path: "p2" }]);
  });

  it("a rank failing with a typed error makes the others throw the same class naming it; it throws its own", async () => {
    const g = group(3);
    const own = new StrictLoadError("missing key `w`", { subject: "w" });
    const results = await Promise.allSettled(g.map((c) => agree(c, "load ck.pt", {}, c.rank === 1 ? own : undefined)));
    expect((results[1] as PromiseRejectedResult).reason).toBe(own);
    for (const r of [0, 2]) {
      const err = (results[r] as PromiseRejectedResult).reason as StrictLoadError;
      expect(err).toBeInstanceOf(StrictLoadError);
      expect(err.subject).toBe("rank 1");
      expect(err.message).toBe(`[savepoint] rank 1 failed in \`load ck.pt\` (this is rank ${r}; no rank continues): missing key \`w\``);
    }
  });

  it("names the step with `failure`, and rebuilds unknown errors as SavepointError", async () => {
    const g = group(2);
    const results = await Promise.allSettled(g.map((c) => agree(c, "save x", {}, c.rank === 0 ? new RangeError("disk full") : undefined, { failure: "could not write the checkpoint for" })));
    const err = (results[1] as PromiseRejectedResult).reason as SavepointError;
    expect(err.constructor).toBe(SavepointError);
    expect(err.message).toBe("[savepoint] rank 0 could not write the checkpoint for `save x` (this is rank 1; no rank continues): disk full");
  });

  it("a missing rank surfaces as CollectiveTimeoutError naming it, within timeoutMs", async () => {
    const [a, b] = group(3, 10_000);
    const results = await Promise.allSettled([a!, b!].map((c) => agree(c, "save y", {}, undefined, { timeoutMs: 100 })));
    for (const r of results) {
      const err = (r as PromiseRejectedResult).reason as CollectiveTimeoutError;
      expect(err).toBeInstanceOf(CollectiveTimeoutError);
      expect(err.subject).toBe("rank 2");
      expect(err.message).toMatch(/rank 2 did not join `save y` within 100 ms/);
    }
  });

  it("a rank with its own error reports it rather than the collective's failure", async () => {
    const [a] = group(2, 100);
    const own = new StrictLoadError("bad");
    await expect(agree(a!, "load z", {}, own)).rejects.toBe(own);
  });
});

describe("describeError", () => {
  it("keeps an Error's class name and message, and stringifies anything else", () => {
    expect(describeError(new StrictLoadError("x"))).toEqual({ name: "StrictLoadError", message: "[savepoint] x" });
    expect(describeError("boom")).toEqual({ name: "Error", message: "boom" });
  });
});

describe("strategyCollective", () => {
  it("takes a collective or an options object, and checks the limits", () => {
    const [c] = group(1);
    expect(strategyCollective(c, "S")).toEqual({ options: { collective: c }, collective: c, timeoutMs: undefined, writeTimeoutMs: 1_800_000 });
    expect(strategyCollective({ collective: c, timeoutMs: 5, writeTimeoutMs: 7 }, "S")).toMatchObject({ collective: c, timeoutMs: 5, writeTimeoutMs: 7 });
    expect(() => strategyCollective({ collective: c, timeoutMs: 0 }, "S")).toThrow(/^\[savepoint\] S `timeoutMs` must be a positive number of milliseconds, got 0\.$/);
    expect(() => strategyCollective(3 as never, "S")).toThrow(InvalidArgumentError);
  });
});
