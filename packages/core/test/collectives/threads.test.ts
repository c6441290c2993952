import { existsSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { launchThreads } from "../../src/collectives/threads.js";
import { REPO } from "../helpers/fixtures.js";

const worker = new URL("./fixtures/thread-worker.mjs", import.meta.url);
beforeAll(() => {
  if (!existsSync(join(REPO, "packages/core/dist/index.js"))) throw new Error("[test setup] build @savepoint/core first (npm run build -w @savepoint/core): the worker threads import its dist.");
});

describe("worker-thread collectives (launchThreads)", () => {
  it("connects every thread, sets RANK/WORLD_SIZE/LOCAL_RANK, and returns one collective per thread", async () => {
    const messages: unknown[] = [];
    const results = await launchThreads(worker, { worldSize: 3, data: { mode: "ok" }, onMessage: (rank, m) => (messages[rank] = m) });
    expect(results.map((r) => r.exitCode)).toEqual([0, 0, 0]);
    for (const m of messages as { all: unknown[]; same: boolean; size: number }[]) {
      expect(m.size).toBe(3);
      expect(m.same).toBe(true);
      expect(m.all).toEqual([0, 1, 2].map((r) => ({ rank: r, env: [String(r), "3", String(r)] })));
    }
  });

  it("a thread that throws fails the others at once, naming it and its error", async () => {
    const messages: { name: string; message: string; ms: number }[] = [];
    const results = await launchThreads(worker, { worldSize: 3, data: { mode: "throw" }, timeoutMs: 30_000, onMessage: (rank, m) => (messages[rank] = m as never) });
    expect(results[1]!.exitCode).toBe(1);
    expect(results[1]!.error?.message).toBe("boom on rank 1");
    for (const r of [0, 2]) {
      expect(messages[r]!.name).toBe("CollectiveTimeoutError");
      expect(messages[r]!.message).toMatch(/rank 1 threw Error: boom on rank 1\b.*`save ck\/t\.ckpt`/);
      expect(messages[r]!.ms).toBeLessThan(10_000);
    }
  });

  it("a thread that skips an operation makes the others time out naming it", async () => {
    const messages: { name: string; message: string }[] = [];
    const started = Date.now();
    await launchThreads(worker, { worldSize: 3, data: { mode: "skip" }, timeoutMs: 300, onMessage: (rank, m) => (messages[rank] = m as never) });
    expect(Date.now() - started).toBeLessThan(10_000);
    for (const r of [0, 2]) {
      expect(messages[r]!.name).toBe("CollectiveTimeoutError");
      // Either the timeout or rank 1's exit (whichever comes first) names rank 1.
      expect(messages[r]!.message).toMatch(/rank 1 (did not join `save ck\/t\.ckpt`|exited)/);
    }
  });
});
