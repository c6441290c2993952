import type { Backend } from "./backends/backend.js";
import { InvalidArgumentError } from "./errors.js";
import type { Strategy } from "./strategies/strategy.js";

interface Registries {
  strategies: Map<string, () => Strategy>;
  backends: Map<string, () => Backend>;
}

// Kept on globalThis under a registered symbol so two installed copies of core share one registry.
const KEY = Symbol.for("savepoint.registries");
function registries(): Registries {
  const g = globalThis as unknown as Record<symbol, Registries | undefined>;
  return (g[KEY] ??= { strategies: new Map(), backends: new Map() });
}

/**
 * Makes a strategy available by name: `new Fabric({ strategy: "ddp" })`.
 *
 * @example
 * ```ts
 * registerStrategy("mine", () => new MyStrategy());
 * ```
 */
export function registerStrategy(name: string, factory: () => Strategy): void {
  registries().strategies.set(name, factory);
}

/** Makes a backend available by name: `new Fabric({ backend: "webgpu" })`. */
export function registerBackend(name: string, factory: () => Backend): void {
  registries().backends.set(name, factory);
}

/** Creates the strategy registered as `name`; the error lists what is registered. */
export function createStrategy(name: string): Strategy {
  return lookup(registries().strategies, name, "strategy", "@savepoint/strategy-ddp registers \"ddp\" when imported");
}

/** Creates the backend registered as `name`; the error lists what is registered. */
export function createBackend(name: string): Backend {
  return lookup(registries().backends, name, "backend", "@savepoint/backend-webgpu registers \"webgpu\" when imported");
}

function lookup<T>(map: Map<string, () => T>, name: string, kind: string, hint: string): T {
  const f = map.get(name);
  if (!f) {
    throw new InvalidArgumentError(`no ${kind} named "${name}" is registered (registered: ${[...map.keys()].map((k) => `"${k}"`).join(", ") || "none"}). Import the package that provides it first (${hint}).`, { subject: name });
  }
  return f();
}
