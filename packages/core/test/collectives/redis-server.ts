// Starts a throwaway redis-server on a free loopback port for the Redis collective tests.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";

/** Debian's redis-server; override with SAVEPOINT_REDIS_SERVER. */
export const REDIS_SERVER = process.env.SAVEPOINT_REDIS_SERVER ?? "/usr/bin/redis-server";

/**
 * Whether the Redis tests should be skipped. Under CI=true a missing redis-server fails the suite
 * (DESIGN.md §7); elsewhere the tests skip with a message saying what to install.
 */
export function skipWithoutRedis(): boolean {
  if (existsSync(REDIS_SERVER)) return false;
  const why = `${REDIS_SERVER} is missing (install Debian's redis-server, or set SAVEPOINT_REDIS_SERVER)`;
  if (process.env.CI === "true") throw new Error(`[test setup] ${why}`);
  console.warn(`skipping Redis collective tests: ${why}`);
  return true;
}

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  readonly process: ChildProcess;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Starts redis-server on 127.0.0.1 at a random port, without persistence; resolves once it accepts connections. */
export async function startRedis(): Promise<RedisServer> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const child = spawn(REDIS_SERVER, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "yes"], { stdio: ["ignore", "pipe", "pipe"] });
    let log = "";
    const ready = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 10_000);
      const onData = (d: Buffer) => {
        log += d.toString();
        if (/Ready to accept connections/i.test(log)) {
          clearTimeout(timer);
          resolve(true);
        }
      };
      child.stdout!.on("data", onData);
      child.stderr!.on("data", onData);
      child.once("exit", () => {
        clearTimeout(timer);
        resolve(false);
      });
    });
    if (ready) {
      child.stdout!.resume();
      child.stderr!.resume();
      return {
        url: `redis://127.0.0.1:${port}`,
        port,
        process: child,
        stop: () =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once("exit", () => resolve());
            child.kill("SIGKILL");
          }),
      };
    }
    child.kill("SIGKILL");
    if (attempt >= 2) throw new Error(`[test setup] redis-server did not start on port ${port}:\n${log}`);
  }
}
