import { InvalidArgumentError } from "../errors.js";
import { SingleProcessCollective, type Collective } from "./collective.js";
import { RedisCollective } from "./redis.js";
import { TcpCollective } from "./tcp.js";
import { ThreadCollective } from "./threads.js";

/** Options of {@link collectiveFromEnv}. */
export interface CollectiveFromEnvOptions {
  /** Default limit of each operation in ms. @default SAVEPOINT_TIMEOUT_MS, else 60000 */
  timeoutMs?: number;
  /** The environment to read. @default process.env */
  env?: Record<string, string | undefined>;
}

// One collective per process and setting, shared by every copy of core (ESM and CJS alike), so
// a strategy and the training loop that all-reduces gradients use the same connection.
const KEY = Symbol.for("savepoint.collectives");
function cache(): Map<string, Collective> {
  const g = globalThis as unknown as Record<symbol, Map<string, Collective> | undefined>;
  return (g[KEY] ??= new Map());
}

/**
 * The collective this process should use, from its environment:
 * - in a worker started by `launchThreads`: that thread group;
 * - under `savepoint run` (SAVEPOINT_HUB, RANK, WORLD_SIZE): the launcher's coordinator;
 * - with SAVEPOINT_REDIS_URL, RANK and WORLD_SIZE: a Redis rendezvous (optional peer `ioredis`);
 * - otherwise: a single process.
 *
 * The same call returns the same instance for the life of the process (until it is closed).
 *
 * @example
 * ```ts
 * const collective = collectiveFromEnv();
 * console.log(`rank ${collective.rank} of ${collective.worldSize}`);
 * ```
 */
export function collectiveFromEnv(options: CollectiveFromEnvOptions = {}): Collective {
  if (options.env === undefined && ThreadCollective.available()) return ThreadCollective.fromWorkerData(options);
  const env = options.env ?? process.env;
  const hub = env.SAVEPOINT_HUB;
  const redis = env.SAVEPOINT_REDIS_URL;
  if (hub || redis) {
    const worldSize = intFromEnv(env, "WORLD_SIZE", hub ? "savepoint run sets it" : "set it to the number of processes");
    const rank = intFromEnv(env, "RANK", hub ? "savepoint run sets it" : "set it to this process's rank, 0 to WORLD_SIZE-1");
    if (hub) {
      const m = /^(.*):(\d+)$/.exec(hub);
      if (!m) throw new InvalidArgumentError(`SAVEPOINT_HUB must be host:port, got "${hub}". It is set by \`savepoint run\`; do not set it by hand.`, { subject: "SAVEPOINT_HUB" });
      const runId = env.SAVEPOINT_RUN_ID ?? "";
      return cached(`hub ${hub} ${runId} ${rank}/${worldSize}`, () => new TcpCollective({ rank, worldSize, host: m[1]!, port: Number(m[2]), runId, timeoutMs: options.timeoutMs }));
    }
    const runId = env.SAVEPOINT_RUN_ID;
    return cached(`redis ${redis} ${runId} ${rank}/${worldSize}`, () => new RedisCollective({ url: redis!, rank, worldSize, runId, timeoutMs: options.timeoutMs }));
  }
  const ws = env.WORLD_SIZE;
  if (ws !== undefined && ws !== "" && ws !== "1") {
    throw new InvalidArgumentError(
      `WORLD_SIZE=${ws} but there is no way to reach the other ranks. Start the job with \`savepoint run -n ${ws} script.js\`, or set SAVEPOINT_REDIS_URL (with RANK and WORLD_SIZE) on every process, or pass a collective explicitly.`,
      { subject: "WORLD_SIZE" },
    );
  }
  return new SingleProcessCollective();
}

function cached(key: string, make: () => Collective): Collective {
  const map = cache();
  const hit = map.get(key);
  if (hit) return hit;
  const c = make();
  const close = c.close?.bind(c);
  if (close) {
    c.close = async () => {
      if (map.get(key) === c) map.delete(key);
      await close();
    };
  }
  map.set(key, c);
  return c;
}

function intFromEnv(env: Record<string, string | undefined>, name: string, hint: string): number {
  const raw = env[name];
  const n = Number(raw);
  if (raw === undefined || raw === "" || !Number.isInteger(n) || n < 0) {
    throw new InvalidArgumentError(`${name} must be a non-negative integer, got ${raw === undefined ? "nothing" : `"${raw}"`} (${hint}).`, { subject: name });
  }
  return n;
}
