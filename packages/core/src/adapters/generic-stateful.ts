import type { StatefulAdapter } from "./stateful-adapter.js";

interface UserStateful {
  stateDict(): unknown;
  loadStateDict(state: unknown, options?: { strict: boolean }): unknown;
}

/**
 * Any object of yours with `stateDict()` and `loadStateDict(state)` (sync or async), like
 * Lightning's `_Stateful` protocol.
 */
export const genericStatefulAdapter: StatefulAdapter = {
  name: "stateDict/loadStateDict",
  kind: "stateful",
  matches(value) {
    const v = value as Partial<UserStateful>;
    return typeof v.stateDict === "function" && typeof v.loadStateDict === "function";
  },
  async stateDict(value) {
    return await (value as UserStateful).stateDict();
  },
  async loadStateDict(value, state, ctx) {
    await (value as UserStateful).loadStateDict(state, { strict: ctx.strict });
  },
};
