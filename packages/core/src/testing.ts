/**
 * `@savepoint/core/testing`: the conformance suites every adapter runs (with vitest), so third-party
 * strategies, backends and IO implementations are held to the same contract as ours.
 *
 * @example
 * ```ts
 * import { runBackendConformance } from "@savepoint/core/testing";
 * runBackendConformance({ name: "mine", backend: () => myBackend(), ... });
 * ```
 *
 * @packageDocumentation
 */
export { runIOConformance, type IOConformanceOptions } from "./testing/io-conformance.js";
export { runBackendConformance, type BackendConformanceOptions } from "./testing/backend-conformance.js";
export { runStrategyConformance, type StrategyConformanceOptions, TinyModule } from "./testing/strategy-conformance.js";
export { decodeCheckpointBytes, decodeCheckpointDirectory } from "./testing/back-door.js";
