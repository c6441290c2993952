import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { deserialize, serialize } from "node:v8";
import { CollectiveTimeoutError, InvalidArgumentError, SavepointError } from "../errors.js";
import type { CollectiveOptions } from "./collective.js";
import { checkTag, checkTimeout, checkWorld, failureError, ranksPhrase, resolveTimeout, sameOperation, type CollectiveFailure, type OpCall, type OpKind } from "./failure.js";
import { OpCollective } from "./op-collective.js";

/** The few ioredis methods used here (ioredis is an optional peer, loaded lazily). */
interface RedisClient {
  call(command: string, ...args: (string | Buffer | number)[]): Promise<unknown>;
  callBuffer(command: string, ...args: (string | Buffer | number)[]): Promise<unknown>;
  quit(): Promise<unknown>;
  disconnect(): void;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  stream?: { ref?(): void; unref?(): void };
}
type RedisCtor = new (url: string, options: Record<string, unknown>) => RedisClient;

/** The exact line that installs the optional Redis client. */
export const IOREDIS_INSTALL = "npm install ioredis";

/**
 * Loads `ioredis` on first use; when it is not installed, throws an error with the `npm install`
 * line that fixes it. `importer` exists for tests.
 */
export async function loadIoredis(importer: () => Promise<unknown> = () => import("ioredis")): Promise<RedisCtor> {
  let mod: Record<string, unknown>;
  try {
    mod = (await importer()) as Record<string, unknown>;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND" || /Cannot find (module|package) 'ioredis'/.test(String((err as Error).message))) {
      throw new SavepointError(`the Redis collective (SAVEPOINT_REDIS_URL) needs the optional package ioredis, which is not installed. Install it: ${IOREDIS_INSTALL}`, { cause: err, subject: "ioredis" });
    }
    throw err;
  }
  const def = mod.default as Record<string, unknown> | undefined;
  const ctor = (mod.Redis ?? def?.Redis ?? def) as RedisCtor | undefined;
  if (typeof ctor !== "function") throw new SavepointError(`the installed ioredis does not export a Redis class; install a current version: ${IOREDIS_INSTALL}`, { subject: "ioredis" });
  return ctor;
}

/** Options of {@link RedisCollective}. */
export interface RedisCollectiveOptions {
  /** `redis://host:port/db`. */
  url: string;
  rank: number;
  worldSize: number;
  /** Names the job, so jobs sharing a Redis server do not meet. @default SAVEPOINT_RUN_ID, else "default" */
  runId?: string;
  /** Default limit of each operation (and of the rendezvous) in ms. @default SAVEPOINT_TIMEOUT_MS, else 60000 */
  timeoutMs?: number;
  /**
   * A rank whose heartbeat key is older than this is reported as gone (its machine or event loop is
   * stuck). Keep it above your longest synchronous step. @default SAVEPOINT_HEARTBEAT_TTL_MS, else 30000
   */
  heartbeatTtlMs?: number;
  /** Prefix of every key. @default "savepoint" */
  keyPrefix?: string;
}

interface Session {
  sid: string;
  nonces: string[];
  where: string[];
  clientList: boolean;
}

interface Member {
  nonce: string;
  worldSize: number;
  where: string;
}

interface StoredCall {
  kind: OpKind;
  tag: string;
  root?: number;
  value?: unknown;
}

// Arrive at an operation unless it already failed (then return the failure).
const ARRIVE = `
local f = redis.call('HGET', KEYS[1], 'fail')
if f then return f end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return false`;

// Fail an operation unless every rank arrived (then it completed: return nil) or it already failed.
// A mismatch (ARGV[4] = "1") fails even when every rank arrived: no rank can complete it.
const FAIL = `
local f = redis.call('HGET', KEYS[1], 'fail')
if f then return f end
if ARGV[4] ~= '1' and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[1]) then return false end
redis.call('HSET', KEYS[1], 'fail', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return ARGV[2]`;

const LIVENESS_EVERY_MS = 300;
const MAX_POLL_MS = 20;

/**
 * Processes on one or many machines that meet through a Redis server: each is told only the
 * server's address, the world size and its rank (`SAVEPOINT_REDIS_URL`, `WORLD_SIZE`, `RANK`).
 * Operations are hashes of per-rank entries; an operation completes or fails on every rank
 * (atomically, by a script). A rank that exits is noticed from its Redis connection disappearing
 * (CLIENT LIST) within a fraction of a second; one whose machine hangs, from its heartbeat key
 * expiring. Requires the optional peer `ioredis`.
 *
 * @example
 * ```ts
 * // on each machine: SAVEPOINT_REDIS_URL=redis://10.0.0.1:6379 WORLD_SIZE=2 RANK=<0|1> node train.js
 * const fabric = new Fabric({ strategy: new DDPStrategy() }); // collectiveFromEnv() picks Redis
 * ```
 */
export class RedisCollective extends OpCollective {
  readonly rank: number;
  readonly worldSize: number;
  readonly timeoutMs: number;
  readonly heartbeatTtlMs: number;
  readonly transport: string;
  readonly #url: string;
  readonly #prefix: string;
  readonly #nonce = randomBytes(8).toString("hex");
  readonly #ready: Promise<Session>;
  #client?: RedisClient;
  #lastError?: string;
  #seq = 0;
  #active = 0;
  #heartbeat?: ReturnType<typeof setInterval>;
  #closed = false;

  constructor(options: RedisCollectiveOptions) {
    super();
    ({ rank: this.rank, worldSize: this.worldSize } = checkWorld(options.rank, options.worldSize));
    if (typeof options.url !== "string" || !/^rediss?:\/\//.test(options.url)) {
      throw new InvalidArgumentError(`the Redis address must be a redis:// or rediss:// URL (e.g. redis://10.0.0.1:6379), got ${String(options.url)}.`, { subject: "SAVEPOINT_REDIS_URL" });
    }
    this.timeoutMs = resolveTimeout(options.timeoutMs);
    const ttlEnv = process.env.SAVEPOINT_HEARTBEAT_TTL_MS;
    this.heartbeatTtlMs = checkTimeout(options.heartbeatTtlMs ?? (ttlEnv ? Number(ttlEnv) : 30_000), "heartbeatTtlMs");
    const runId = (options.runId ?? process.env.SAVEPOINT_RUN_ID ?? "default").replace(/[^A-Za-z0-9_.-]/g, "_") || "default";
    this.#url = options.url;
    this.#prefix = `${options.keyPrefix ?? "savepoint"}:${runId}`;
    this.transport = `Redis at ${redact(options.url)}, job "${runId}"`;
    this.#ready = this.#rendezvous();
    this.#ready.catch(() => {});
  }

  /** Leaves the group (the others' operations fail at once naming this rank) and disconnects. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#heartbeat);
    const client = this.#client;
    if (!client) return;
    try {
      const session = await withDeadline(this.#ready, Date.now() + 2000, () => new Error("not joined"));
      await withDeadline(
        Promise.all([
          client.call("HSET", this.#key(`${session.sid}:left`), String(this.rank), "closed its collective (its script finished or called close())"),
          client.call("PEXPIRE", this.#key(`${session.sid}:left`), 86_400_000),
          client.call("DEL", this.#key(`${session.sid}:hb:${this.rank}`)),
        ]),
        Date.now() + 2000,
        () => new Error("timeout"),
      );
      await withDeadline(client.quit(), Date.now() + 2000, () => new Error("timeout"));
    } catch {
      // best effort
    }
    client.disconnect();
  }

  #key(suffix: string): string {
    return `${this.#prefix}:${suffix}`;
  }

  #setActive(delta: number): void {
    this.#active += delta;
    const s = this.#client?.stream;
    if (this.#active > 0) s?.ref?.();
    else s?.unref?.();
  }

  async #rendezvous(): Promise<Session> {
    const Redis = await loadIoredis();
    const deadline = Date.now() + this.timeoutMs;
    const client = new Redis(this.#url, {
      connectionName: `savepoint:${this.#prefix.split(":").slice(1).join(":")}:${this.#nonce}`,
      maxRetriesPerRequest: null,
      retryStrategy: (times: number) => Math.min(50 * times, 500),
      enableReadyCheck: true,
    });
    this.#client = client;
    client.on("error", (err) => {
      this.#lastError = (err as Error).message;
    });
    client.on("ready", () => this.#setActive(0));
    this.#setActive(1);
    try {
      const me: Member = { nonce: this.#nonce, worldSize: this.worldSize, where: `pid ${process.pid} on ${hostname()}` };
      const joins = this.#key("joins");
      const sessionKey = this.#key("session");
      let session: Session | undefined;
      if (this.rank === 0) {
        await this.#cmd(client.call("DEL", joins, sessionKey), deadline, "start the rendezvous");
      }
      let interval = 5;
      while (!session) {
        await this.#cmd(client.call("HSET", joins, String(this.rank), JSON.stringify(me)), deadline, "join the rendezvous");
        await this.#cmd(client.call("PEXPIRE", joins, 86_400_000), deadline, "join the rendezvous");
        if (this.rank === 0) {
          const all = (await this.#cmd(client.call("HGETALL", joins), deadline, "join the rendezvous")) as string[];
          const members = new Map<number, Member>();
          for (let i = 0; i + 1 < all.length; i += 2) members.set(Number(all[i]), JSON.parse(all[i + 1]!) as Member);
          for (const [r, m] of members) {
            if (m.worldSize !== this.worldSize) {
              throw new InvalidArgumentError(`rank ${r} (${m.where}) was started with WORLD_SIZE=${m.worldSize} but rank 0 with ${this.worldSize} (${this.transport}). Start every rank with the same WORLD_SIZE.`, { subject: `rank ${r}` });
            }
          }
          const missing = Array.from({ length: this.worldSize }, (_, r) => r).filter((r) => !members.has(r));
          if (missing.length === 0) {
            const s = { sid: randomBytes(8).toString("hex"), nonces: Array.from({ length: this.worldSize }, (_, r) => members.get(r)!.nonce), where: Array.from({ length: this.worldSize }, (_, r) => members.get(r)!.where) };
            await this.#cmd(client.call("SET", sessionKey, JSON.stringify(s), "PX", 86_400_000), deadline, "publish the session");
            session = { ...s, clientList: false };
          } else if (Date.now() >= deadline) {
            throw new CollectiveTimeoutError(
              `${ranksPhrase(missing)} did not join the rendezvous within ${this.timeoutMs} ms (${this.transport}). Start every rank with the same SAVEPOINT_REDIS_URL, SAVEPOINT_RUN_ID and WORLD_SIZE, each with its own RANK, or raise SAVEPOINT_TIMEOUT_MS.`,
              { subject: `rank ${missing[0]}` },
            );
          }
        } else {
          const raw = (await this.#cmd(client.call("GET", sessionKey), deadline, "join the rendezvous")) as string | null;
          const s = raw ? (JSON.parse(raw) as Omit<Session, "clientList">) : undefined;
          if (s && s.nonces[this.rank] === this.#nonce) {
            if (s.nonces.length !== this.worldSize) {
              throw new InvalidArgumentError(`rank 0 runs a world of ${s.nonces.length} ranks but this rank was started with WORLD_SIZE=${this.worldSize} (${this.transport}). Start every rank with the same WORLD_SIZE.`);
            }
            session = { ...s, clientList: false };
          } else if (Date.now() >= deadline) {
            throw new CollectiveTimeoutError(
              `rank 0 did not complete the rendezvous with rank ${this.rank} within ${this.timeoutMs} ms (${this.transport}). Check that rank 0 runs with the same SAVEPOINT_REDIS_URL, SAVEPOINT_RUN_ID and WORLD_SIZE, that the other ranks started, and that each RANK is used once.`,
              { subject: "rank 0" },
            );
          }
        }
        if (!session) {
          await sleep(interval);
          interval = Math.min(interval * 2, 50);
        }
      }
      try {
        await this.#cmd(client.call("CLIENT", "LIST"), deadline, "check CLIENT LIST");
        session.clientList = true;
      } catch {
        session.clientList = false; // no permission: heartbeats alone tell who is alive
      }
      const hb = this.#key(`${session.sid}:hb:${this.rank}`);
      const beat = () => client.call("SET", hb, "1", "PX", this.heartbeatTtlMs).catch(() => {});
      await beat();
      this.#heartbeat = setInterval(beat, Math.max(50, Math.floor(this.heartbeatTtlMs / 3)));
      this.#heartbeat.unref();
      return session;
    } catch (err) {
      client.disconnect(); // stop reconnecting, so the process can exit
      throw err;
    } finally {
      this.#setActive(-1);
    }
  }

  async #cmd<T>(p: Promise<T>, deadline: number, what: string): Promise<T> {
    return withDeadline(p, deadline, () =>
      new CollectiveTimeoutError(`rank ${this.rank} could not ${what}: no answer from ${this.transport} in time${this.#lastError ? ` (last error: ${this.#lastError})` : ""}. Check that the Redis server is running and reachable at SAVEPOINT_REDIS_URL.`, { subject: "redis" }),
    );
  }

  protected async op(kind: OpKind, tag: string, value: unknown, root: number | undefined, options: CollectiveOptions | undefined): Promise<unknown> {
    checkTag(tag);
    const timeoutMs = options?.timeoutMs === undefined ? this.timeoutMs : checkTimeout(options.timeoutMs, "timeoutMs");
    if (this.#closed) throw new CollectiveTimeoutError(`\`${tag}\` was called on rank ${this.rank} after its collective was closed.`, { subject: `rank ${this.rank}` });
    let payload: Buffer;
    try {
      payload = serialize({ kind, tag, root, value } satisfies StoredCall);
    } catch (err) {
      throw new InvalidArgumentError(`the value passed to ${kind} \`${tag}\` cannot be sent to the other ranks: ${(err as Error).message}. Collectives carry plain data (numbers, strings, arrays, plain objects, typed arrays).`, { cause: err });
    }
    const seq = this.#seq++; // taken at call time, so concurrent calls keep their order
    const started = Date.now();
    const deadline = started + timeoutMs;
    this.#setActive(1);
    try {
      const session = await this.#ready;
      const client = this.#client!;
      const key = this.#key(`${session.sid}:op:${seq}`);
      const keep = String(Math.max(600_000, 2 * timeoutMs));
      const self = { rank: this.rank, tag, transport: this.transport };
      const failed = (raw: unknown, late: boolean) => failureError(JSON.parse(String(raw)) as CollectiveFailure, { ...self, late });
      const arrived = await this.#cmd(client.call("EVAL", ARRIVE, 1, key, String(this.rank), payload, keep), deadline + 5000, `join \`${tag}\``);
      if (arrived) throw failed(arrived, true);
      const fail = async (failure: CollectiveFailure): Promise<Error | undefined> => {
        const force = failure.reason === "mismatch" ? "1" : "0";
        const r = await this.#cmd(client.call("EVAL", FAIL, 1, key, String(this.worldSize), JSON.stringify(failure), keep, force), deadline + 5000, `report the failure of \`${tag}\``);
        return r ? failed(r, false) : undefined;
      };
      let interval = 1;
      let nextLiveness = Date.now() + LIVENESS_EVERY_MS;
      for (;;) {
        const fields = (await this.#cmd(client.callBuffer("HGETALL", key), deadline + 5000, `wait in \`${tag}\``)) as Buffer[];
        const calls = new Map<number, StoredCall>();
        let failure: unknown;
        for (let i = 0; i + 1 < fields.length; i += 2) {
          const name = fields[i]!.toString();
          if (name === "fail") failure = fields[i + 1]!.toString();
          else calls.set(Number(name), deserialize(fields[i + 1]!) as StoredCall);
        }
        if (failure !== undefined) throw failed(failure, false);
        const opCalls: OpCall[] = [...calls].map(([rank, c]) => ({ rank, kind: c.kind, tag: c.tag, ...(c.kind === "broadcast" ? { root: c.root } : {}) }));
        const missing = Array.from({ length: this.worldSize }, (_, r) => r).filter((r) => !calls.has(r));
        const where = Object.fromEntries(session.where.map((w, r) => [r, w]));
        const mine = { kind, tag, ...(kind === "broadcast" ? { root } : {}) };
        if (opCalls.some((c) => !sameOperation(c, mine))) {
          const err = await fail({ reason: "mismatch", seq, missing, calls: opCalls, where });
          if (err) throw err;
          continue;
        }
        if (missing.length === 0) {
          if (kind === "allGather") return Array.from({ length: this.worldSize }, (_, r) => calls.get(r)!.value);
          if (kind === "broadcast") return calls.get(root!)!.value;
          return undefined;
        }
        const now = Date.now();
        if (now >= nextLiveness) {
          nextLiveness = now + LIVENESS_EVERY_MS;
          const gone = await this.#gone(session, missing, deadline + 5000);
          if (gone.length > 0) {
            const err = await fail({ reason: "gone", seq, missing, calls: opCalls, gone, where });
            if (err) throw err;
            continue;
          }
        }
        if (now >= deadline) {
          const err = await fail({ reason: "timeout", seq, missing, calls: opCalls, timeoutMs, where });
          if (err) throw err;
          continue;
        }
        await sleep(Math.min(interval, Math.max(1, deadline - now)));
        interval = Math.min(interval * 2, MAX_POLL_MS);
      }
    } finally {
      this.#setActive(-1);
    }
  }

  /** Which of `ranks` closed, lost their connection, or stopped their heartbeat. */
  async #gone(session: Session, ranks: number[], deadline: number): Promise<{ rank: number; why: string }[]> {
    const client = this.#client!;
    const out: { rank: number; why: string }[] = [];
    const left = (await this.#cmd(client.call("HGETALL", this.#key(`${session.sid}:left`)), deadline, "check the other ranks")) as string[];
    const leftBy = new Map<number, string>();
    for (let i = 0; i + 1 < left.length; i += 2) leftBy.set(Number(left[i]), left[i + 1]!);
    let names: Set<string> | undefined;
    if (session.clientList) {
      const list = String(await this.#cmd(client.call("CLIENT", "LIST"), deadline, "check the other ranks"));
      names = new Set([...list.matchAll(/(?:^|\s)name=(\S*)/g)].map((m) => m[1]!));
    }
    const prefixName = `savepoint:${this.#prefix.split(":").slice(1).join(":")}:`;
    for (const r of ranks) {
      const why = leftBy.get(r);
      if (why) {
        out.push({ rank: r, why });
        continue;
      }
      if (names && !names.has(prefixName + session.nonces[r])) {
        out.push({ rank: r, why: "lost its connection to Redis (its process exited or was killed)" });
        continue;
      }
      const beat = await this.#cmd(client.call("EXISTS", this.#key(`${session.sid}:hb:${r}`)), deadline, "check the other ranks");
      if (Number(beat) === 0) out.push({ rank: r, why: `sent no heartbeat for ${this.heartbeatTtlMs} ms (its machine or its event loop is stuck)` });
    }
    return out;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function withDeadline<T>(p: Promise<T>, deadline: number, error: () => Error): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(error()), Math.max(0, deadline - Date.now()));
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, "//***@");
}
