import { isCollective, type Collective } from "../collectives/collective.js";
import { collectiveFromEnv } from "../collectives/from-env.js";
import { InvalidArgumentError } from "../errors.js";

/** The options every multi-rank strategy takes (DDP, FSDP, ...). */
export interface DistributedStrategyOptions {
  /** How the ranks talk. @default collectiveFromEnv() (savepoint run, Redis, threads, or a single process) */
  collective?: Collective;
  /** Limit of each agreement step (ranks arriving at save/load) in ms. @default the collective's (SAVEPOINT_TIMEOUT_MS, else 60000) */
  timeoutMs?: number;
  /** How long ranks wait for the others' writes in ms; a rank that dies is reported at once. @default 1800000 (30 minutes, like torch.distributed) */
  writeTimeoutMs?: number;
}

/** What {@link strategyCollective} makes of a strategy's constructor argument. */
export interface StrategyCollective<O extends DistributedStrategyOptions> {
  /** The options object (`{ collective }` when a collective was passed). */
  options: O;
  /** The given collective, else {@link collectiveFromEnv}'s. */
  collective: Collective;
  /** Limit of agreement steps, `undefined` for the collective's own. */
  timeoutMs?: number;
  /** Limit of the steps that wait for writes. */
  writeTimeoutMs: number;
}

/** Default of {@link DistributedStrategyOptions.writeTimeoutMs}, as torch.distributed's. */
const WRITE_TIMEOUT_MS = 1_800_000;

/**
 * Reads the constructor argument of a multi-rank strategy, which is a collective or an options
 * object: checks the limits (before connecting anywhere) and picks the collective.
 * `name` names the strategy in error messages.
 *
 * @example
 * ```ts
 * class MyStrategy {
 *   constructor(options: Collective | DistributedStrategyOptions = {}) {
 *     const { collective, timeoutMs, writeTimeoutMs } = strategyCollective(options, "MyStrategy");
 *   }
 * }
 * ```
 */
export function strategyCollective<O extends DistributedStrategyOptions>(options: Collective | O | undefined, name: string): StrategyCollective<O> {
  const opts = (isCollective(options) ? { collective: options } : (options ?? {})) as O;
  if (typeof opts !== "object") throw new InvalidArgumentError(`${name} takes a collective or an options object, got ${typeof opts}.`);
  const timeoutMs = checkMs(opts.timeoutMs, "timeoutMs", name);
  const writeTimeoutMs = checkMs(opts.writeTimeoutMs, "writeTimeoutMs", name) ?? WRITE_TIMEOUT_MS;
  const collective = opts.collective ?? collectiveFromEnv({ timeoutMs });
  return { options: opts, collective, timeoutMs, writeTimeoutMs };
}

function checkMs(ms: unknown, what: string, name: string): number | undefined {
  if (ms === undefined) return undefined;
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms <= 0) throw new InvalidArgumentError(`${name} \`${what}\` must be a positive number of milliseconds, got ${String(ms)}.`, { subject: what });
  return ms;
}
