import { describe } from "../capabilities.js";
import { InvalidArgumentError } from "../errors.js";
import type { SaveOptions } from "../fabric.js";
import { checkExtension } from "./naming.js";

/** Keep the `k` checkpoints with the best value of `metric`. */
export interface KeepBest {
  /** Name of a metric passed to `save(step, state, metrics)`. */
  readonly metric: string;
  /** `"min"` for losses, `"max"` for accuracies. */
  readonly mode: "min" | "max";
  /** How many to keep. */
  readonly k: number;
}

/** Options of {@link CheckpointManager}. */
export interface CheckpointManagerOptions {
  /** Keep the `keepLast` newest checkpoints (by step). @default undefined (keep all, unless `keepBest` is set) */
  keepLast?: number;
  /** Keep the `k` best checkpoints by a metric. Combined with `keepLast`, both sets are kept. @default undefined */
  keepBest?: KeepBest;
  /** Save only steps that are a multiple of `every`; other calls return at once. @default 1 */
  every?: number;
  /** Extension of checkpoint names; it picks the format (`.safetensors`, else torch). @default ".ckpt" */
  extension?: string;
  /** Passed to every `fabric.save` (a `filter`, a `format`). @default {} */
  saveOptions?: SaveOptions;
  /** Receives warnings (a damaged checkpoint skipped, an old one that could not be removed). Rank 0 only. @default console.warn */
  onWarning?: (message: string) => void;
}

/** The options after validation, with defaults filled in. */
export interface ResolvedOptions {
  readonly keepLast: number | undefined;
  readonly keepBest: KeepBest | undefined;
  readonly every: number;
  readonly extension: string;
  readonly saveOptions: SaveOptions;
  readonly onWarning: (message: string) => void;
}

/** Checks every option once, at construction, so a typo fails before the first save. */
export function resolveOptions(options: CheckpointManagerOptions): ResolvedOptions {
  if (typeof options !== "object" || options === null) throw new InvalidArgumentError(`CheckpointManager options must be an object, got ${describe(options)}.`);
  const { keepLast, keepBest, every = 1, extension = ".ckpt", saveOptions = {}, onWarning = (m: string) => console.warn(m) } = options;
  if (keepLast !== undefined && !(Number.isSafeInteger(keepLast) && keepLast >= 1)) {
    throw new InvalidArgumentError(`\`keepLast\` must be a positive integer, got ${describe(keepLast)}. Leave it out to keep every checkpoint.`);
  }
  if (keepBest !== undefined) {
    if (typeof keepBest !== "object" || keepBest === null) throw new InvalidArgumentError(`\`keepBest\` must be { metric, mode, k }, got ${describe(keepBest)}.`);
    if (typeof keepBest.metric !== "string" || keepBest.metric === "") throw new InvalidArgumentError(`\`keepBest.metric\` must be the name of a metric, got ${describe(keepBest.metric)}.`);
    if (keepBest.mode !== "min" && keepBest.mode !== "max") throw new InvalidArgumentError(`\`keepBest.mode\` must be "min" or "max", got ${describe(keepBest.mode)}.`);
    if (!(Number.isSafeInteger(keepBest.k) && keepBest.k >= 1)) throw new InvalidArgumentError(`\`keepBest.k\` must be a positive integer, got ${describe(keepBest.k)}.`);
  }
  if (!(Number.isSafeInteger(every) && every >= 1)) throw new InvalidArgumentError(`\`every\` must be a positive integer, got ${describe(every)}.`);
  if (typeof saveOptions !== "object" || saveOptions === null) throw new InvalidArgumentError(`\`saveOptions\` must be an object, got ${describe(saveOptions)}.`);
  if (typeof onWarning !== "function") throw new InvalidArgumentError(`\`onWarning\` must be a function, got ${describe(onWarning)}.`);
  return {
    keepLast,
    keepBest: keepBest && { metric: keepBest.metric, mode: keepBest.mode, k: keepBest.k },
    every,
    extension: checkExtension(extension),
    saveOptions,
    onWarning,
  };
}
