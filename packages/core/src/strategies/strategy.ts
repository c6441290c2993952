import type { AdapterRegistry } from "../adapters/stateful-adapter.js";
import type { Backend } from "../backends/backend.js";
import type { Collective } from "../collectives/collective.js";
import type { SafetyMode } from "../formats/format.js";
import type { FormatRegistry } from "../formats/format-registry.js";
import type { CheckpointIO } from "../io/checkpoint-io.js";
import type { KeyMap } from "./key-map.js";
import type { SaveFilter } from "./state-conversion.js";

/** What a strategy works with, provided by the Fabric that owns it. */
export interface StrategyContext {
  readonly backend: Backend;
  readonly io: CheckpointIO;
  readonly formats: FormatRegistry;
  readonly adapters: AdapterRegistry;
  readonly safe: SafetyMode;
  readonly verify: boolean;
  readonly chunkBytes: number;
}

export interface StrategySaveOptions {
  readonly filter?: SaveFilter;
  /** Format name to write instead of choosing by extension. */
  readonly format?: string;
  /**
   * Async saves: copies the writable tree's tensors to host memory. A strategy that supports
   * async saving calls it once its state is converted, writes the returned tree, then calls
   * `release`; the caller regains control as soon as `stage` resolves.
   */
  readonly stage?: (tree: unknown) => Promise<{ tree: unknown; release(): void }>;
}

export interface StrategyLoadOptions {
  readonly strict: boolean;
}

export interface StrategyLoadRawOptions {
  readonly strict: boolean;
  readonly map?: KeyMap;
  /** State that gives context to the target (an optimizer's model). */
  readonly context?: Readonly<Record<string, unknown>>;
}

/**
 * Decides who writes and reads what. Every rank calls every method; all ranks return together.
 *
 * Required: `name`, `collective`, `save`, `load`, `loadRaw`.
 */
export interface Strategy {
  readonly name: string;
  readonly collective: Collective;
  /** Converts `state` (models, optimizers, values) and writes it to `path`. */
  save(path: string, state: Record<string, unknown>, options: StrategySaveOptions, ctx: StrategyContext): Promise<void>;
  /**
   * With a state: restores it in place and returns the remainder of the checkpoint. Without:
   * returns the whole checkpoint, tensors loading lazily.
   */
  load(path: string, state: Record<string, unknown> | undefined, options: StrategyLoadOptions, ctx: StrategyContext): Promise<Record<string, unknown>>;
  /** Loads a bare state-dict file into one model, optimizer or stateful object. */
  loadRaw(path: string, target: unknown, options: StrategyLoadRawOptions, ctx: StrategyContext): Promise<void>;
}

export const STRATEGY_REQUIRED = ["name", "collective", "save", "load", "loadRaw"] as const;
