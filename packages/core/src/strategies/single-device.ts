import { InvalidArgumentError } from "../errors.js";
import { SingleProcessCollective, type Collective } from "../collectives/collective.js";
import { isPlainObject } from "../tree/plain.js";
import { withCheckpoint, writeCheckpoint } from "./checkpoint-files.js";
import { applyKeyMap } from "./key-map.js";
import { convertState, restoreState, toWritableTree } from "./state-conversion.js";
import type { Strategy, StrategyContext, StrategyLoadOptions, StrategyLoadRawOptions, StrategySaveOptions } from "./strategy.js";

/**
 * One process, one device: converts the state, writes one file, reads it back in place.
 * The default strategy of `Fabric`.
 *
 * @example
 * ```ts
 * const fabric = new Fabric({ strategy: new SingleDeviceStrategy() });
 * ```
 */
export class SingleDeviceStrategy implements Strategy {
  readonly name: string = "single-device";
  readonly collective: Collective;

  constructor(collective: Collective = new SingleProcessCollective()) {
    this.collective = collective;
  }

  async save(path: string, state: Record<string, unknown>, options: StrategySaveOptions, ctx: StrategyContext): Promise<void> {
    const converted = await convertState(state, options.filter, ctx);
    const writable = toWritableTree(converted, ctx.backend);
    const staged = options.stage ? await options.stage(writable) : { tree: writable, release() {} };
    try {
      await writeCheckpoint(staged.tree, path, ctx, options.format);
    } finally {
      staged.release();
    }
  }

  async load(path: string, state: Record<string, unknown> | undefined, options: StrategyLoadOptions, ctx: StrategyContext): Promise<Record<string, unknown>> {
    return withCheckpoint(path, ctx, async (checkpoint) => {
      if (!state || Object.keys(state).length === 0) return checkpoint as Record<string, unknown>;
      return restoreState(state, checkpoint, options.strict, ctx, path);
    });
  }

  async loadRaw(path: string, target: unknown, options: StrategyLoadRawOptions, ctx: StrategyContext): Promise<void> {
    const adapter = ctx.adapters.find(target);
    if (!adapter) {
      throw new InvalidArgumentError(`loadRaw needs a model, an optimizer or an object with stateDict()/loadStateDict(); got ${typeof target}. To load several objects use fabric.load(path, { ... }).`);
    }
    await withCheckpoint(path, ctx, async (checkpoint) => {
      const sd = options.map ? await applyKeyMap(checkpoint, options.map, path) : checkpoint;
      const key = isPlainObject(options.context) ? Object.keys(options.context).find((k) => options.context![k] === target) ?? "target" : "target";
      await adapter.loadStateDict(target, sd, { backend: ctx.backend, adapters: ctx.adapters, state: { ...options.context, [key]: target }, key, strict: options.strict });
    });
  }
}
