import { MessageChannel, Worker, workerData as currentWorkerData, type MessagePort } from "node:worker_threads";
import { InvalidArgumentError } from "../errors.js";
import { checkWorld, describeExit } from "./failure.js";
import { HubCollective, type HubCollectiveOptions } from "./hub-collective.js";
import { Hub, type FromHub, type ToHub } from "./hub.js";

/** Key under which `launchThreads` passes each worker its rank and port in `workerData`. */
export const THREAD_KEY = "savepoint";

interface ThreadInit {
  rank: number;
  worldSize: number;
  port: MessagePort;
  timeoutMs?: number;
}

/** Options of {@link launchThreads}. */
export interface LaunchThreadsOptions {
  /** Number of ranks (threads). */
  worldSize: number;
  /** Given to every worker as `workerData.data`. */
  data?: unknown;
  /** `process.argv.slice(2)` of every worker. */
  argv?: string[];
  /** Extra environment of the workers (they also get RANK, WORLD_SIZE, LOCAL_RANK). */
  env?: Record<string, string | undefined>;
  /** Default limit of each collective operation in the workers. @default SAVEPOINT_TIMEOUT_MS, else 60000 */
  timeoutMs?: number;
  /** After a rank fails, how long the others may run before they are terminated. @default 5000 */
  graceMs?: number;
  /** Receives what a worker posts with `parentPort.postMessage`. */
  onMessage?: (rank: number, message: unknown) => void;
}

/** How one rank (thread) ended. */
export interface ThreadResult {
  rank: number;
  exitCode: number;
  /** The uncaught error that ended it, if any. */
  error?: Error;
}

/**
 * Runs `script` in `worldSize` worker threads of this process, ranks 0…N-1, with this thread as
 * their coordinator. In each worker, `collectiveFromEnv()` returns its rank's collective. When a
 * rank throws or exits, the others' collective operations fail at once naming it, and after
 * `graceMs` the threads still running are terminated. Resolves when every thread has ended.
 *
 * @example
 * ```ts
 * const results = await launchThreads(new URL("./train.mjs", import.meta.url), { worldSize: 2 });
 * if (results.some((r) => r.exitCode !== 0)) process.exitCode = 1;
 * ```
 */
export async function launchThreads(script: string | URL, options: LaunchThreadsOptions): Promise<ThreadResult[]> {
  const { worldSize } = checkWorld(0, options.worldSize);
  const ports: MessagePort[] = [];
  const hub = new Hub(worldSize, (rank, message) => ports[rank]?.postMessage(message));
  const workers: Worker[] = [];
  const results: ThreadResult[] = [];
  let failing = false;
  let kill: ReturnType<typeof setTimeout> | undefined;
  const graceMs = options.graceMs ?? 5000;

  const done = new Promise<void>((resolveAll) => {
    let left = worldSize;
    for (let rank = 0; rank < worldSize; rank++) {
      const { port1, port2 } = new MessageChannel();
      ports.push(port1);
      port1.on("message", (m: ToHub) => hub.receive(rank, m));
      const init: ThreadInit = { rank, worldSize, port: port2, timeoutMs: options.timeoutMs };
      const worker = new Worker(script, {
        workerData: { [THREAD_KEY]: init, data: options.data },
        transferList: [port2],
        argv: options.argv ?? [],
        env: { ...process.env, ...options.env, RANK: String(rank), WORLD_SIZE: String(worldSize), LOCAL_RANK: String(rank), LOCAL_WORLD_SIZE: String(worldSize) },
      });
      workers.push(worker);
      if (options.onMessage) worker.on("message", (m) => options.onMessage!(rank, m));
      let error: Error | undefined;
      worker.on("error", (err) => {
        error = err instanceof Error ? err : new Error(String(err));
        hub.rankGone(rank, `threw ${error.name}: ${error.message.replace(/^\[savepoint\] /, "").slice(0, 300)}`);
      });
      worker.on("exit", (code) => {
        const exitCode = error && code === 0 ? 1 : code;
        results[rank] = { rank, exitCode, ...(error ? { error } : {}) };
        hub.rankGone(rank, describeExit(exitCode, null));
        port1.close();
        if (exitCode !== 0 && !failing) {
          failing = true;
          kill = setTimeout(() => {
            for (const w of workers) void w.terminate();
          }, graceMs);
        }
        if (--left === 0) resolveAll();
      });
    }
  });
  await done;
  clearTimeout(kill);
  hub.close();
  return results;
}

/**
 * The collective of a worker started by {@link launchThreads}. Use `collectiveFromEnv()` (or
 * `ThreadCollective.fromWorkerData()`) in the worker script.
 */
export class ThreadCollective extends HubCollective {
  readonly transport = "worker threads (launchThreads)";
  readonly #port: MessagePort;

  private constructor(init: ThreadInit, options: HubCollectiveOptions) {
    super(init.rank, init.worldSize, { timeoutMs: options.timeoutMs ?? init.timeoutMs });
    this.#port = init.port;
    this.#port.on("message", (m: FromHub) => this.receive(m));
    this.#port.on("close", () => this.disconnected("the coordinating thread closed the channel"));
    this.#port.unref();
  }

  /** True inside a worker started by {@link launchThreads}. */
  static available(workerData: unknown = currentWorkerData): boolean {
    const init = (workerData as Record<string, unknown> | null | undefined)?.[THREAD_KEY] as ThreadInit | undefined;
    return typeof init === "object" && init !== null && typeof init.rank === "number" && typeof init.port === "object";
  }

  /** The collective of this worker; created once per thread. */
  static fromWorkerData(options: HubCollectiveOptions = {}, workerData: unknown = currentWorkerData): ThreadCollective {
    if (!ThreadCollective.available(workerData)) {
      throw new InvalidArgumentError("this thread was not started by launchThreads(), so it has no thread collective. Start the script with launchThreads(script, { worldSize }).");
    }
    const init = (workerData as Record<string, ThreadInit>)[THREAD_KEY]!;
    const cached = instances.get(init.port);
    if (cached) return cached;
    const c = new ThreadCollective(init, options);
    instances.set(init.port, c);
    return c;
  }

  protected post(message: ToHub): void {
    this.#port.postMessage(message);
  }

  protected override activeChanged(active: boolean): void {
    if (active) this.#port.ref();
    else this.#port.unref();
  }

  protected override async shutdown(): Promise<void> {
    this.#port.close();
  }
}

const instances = new WeakMap<MessagePort, ThreadCollective>();
