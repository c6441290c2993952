import type { Backend } from "../backends/backend.js";

/** Which of Lightning's kinds an object is; decides how `strict` applies to it. */
export type StatefulKind = "module" | "optimizer" | "stateful";

/** What adapters see while converting or restoring one state. */
export interface AdapterContext {
  readonly backend: Backend;
  /** The whole top-level state being saved or loaded (an optimizer finds its model here). */
  readonly state: Readonly<Record<string, unknown>>;
  /** The adapters in use, to convert objects found inside the state. */
  readonly adapters: AdapterRegistry;
  /** Top-level key of the object being converted, for messages. */
  readonly key: string;
}

/**
 * Turns a live object (model, optimizer, anything stateful) into a state dict and back, the way
 * Lightning uses `state_dict()` / `load_state_dict()`. State dicts are trees whose tensor leaves are
 * backend tensors (when saving) or savepoint tensors (when loading).
 *
 * Required: `name`, `kind`, `matches`, `stateDict`, `loadStateDict`.
 */
export interface StatefulAdapter {
  readonly name: string;
  readonly kind: StatefulKind;
  /** True for the objects this adapter handles. */
  matches(value: unknown): boolean;
  stateDict(value: unknown, ctx: AdapterContext): Promise<unknown>;
  /** Restores in place. Modules honour `strict`; optimizers and others receive it for information. */
  loadStateDict(value: unknown, state: unknown, ctx: AdapterContext & { readonly strict: boolean }): Promise<void>;
  /**
   * Models only: the trainable parameters in optimizer order (torch's `model.parameters()`), each
   * with its state-dict key and the backend tensor; optimizers index their state by this order.
   */
  parameters?(value: unknown): { key: string; variable: unknown; name: string }[];
}

export const ADAPTER_REQUIRED = ["name", "kind", "matches", "stateDict", "loadStateDict"] as const;

/** An ordered list of adapters; the first that matches a value wins. */
export class AdapterRegistry {
  readonly adapters: readonly StatefulAdapter[];
  constructor(adapters: readonly StatefulAdapter[]) {
    this.adapters = adapters;
  }
  /** The adapter for `value`, or undefined when it is a plain value. */
  find(value: unknown): StatefulAdapter | undefined {
    if (typeof value !== "object" || value === null) return undefined;
    return this.adapters.find((a) => a.matches(value));
  }
  /** A new registry with `extra` adapters consulted first. */
  with(extra: readonly StatefulAdapter[]): AdapterRegistry {
    return new AdapterRegistry([...extra, ...this.adapters]);
  }
}
