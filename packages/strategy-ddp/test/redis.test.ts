import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { skipWithoutRedis, startRedis, type RedisServer } from "../../core/test/collectives/redis-server.js";
import { reports, requireBuilt, run, TRAIN } from "./helpers.js";

const skip = skipWithoutRedis();
let redis: RedisServer;
let dir: string;
beforeAll(async () => {
  if (skip) return;
  requireBuilt();
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), "savepoint-ddp-redis-"));
});
afterAll(async () => {
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/**
 * Two processes started separately, each told only the Redis address, the world size and its rank
 * (one job after the other under the default job id: each rendezvous starts a fresh session).
 */
async function separately(phase: string, ckpt: string, out: string) {
  mkdirSync(out, { recursive: true });
  const ranks = [0, 1].map((rank) =>
    run([TRAIN, phase, ckpt, out, "adam"], { SAVEPOINT_REDIS_URL: redis.url, WORLD_SIZE: "2", RANK: String(rank) }),
  );
  return Promise.all(ranks);
}

describe.skipIf(skip)("DDP across processes that meet through Redis (no launcher)", () => {
  it("2 processes: train, save, stop, resume = uninterrupted run, bit for bit", async () => {
    const ckpt = join(dir, "step-10.ckpt");
    for (const e of await separately("first", ckpt, join(dir, "first"))) expect(e.code, e.stderr).toBe(0);
    for (const e of await separately("resume", ckpt, join(dir, "resume"))) expect(e.code, e.stderr).toBe(0);
    for (const e of await separately("full", "-", join(dir, "full"))) expect(e.code, e.stderr).toBe(0);
    const r = reports(join(dir, "resume"));
    const f = reports(join(dir, "full"));
    for (const rank of [0, 1]) {
      expect(r[rank]!.resumedAt).toBe(10);
      expect(r[rank]!.fingerprint).toEqual(f[rank]!.fingerprint);
      expect(r[rank]!.fingerprint).toEqual(r[0]!.fingerprint);
    }
  });

  it("killing rank 0 during a save: the survivor exits with the timeout error naming it, the previous checkpoint stays", async () => {
    const ckpt = join(dir, "kill.ckpt");
    const out = join(dir, "kill");
    const [zero, one] = await separately("kill", ckpt, out);
    expect(zero!.signal).toBe("SIGKILL");
    expect(one!.code).toBe(1);
    const err = reports(out)[1]!.error;
    expect(err.name).toBe("CollectiveTimeoutError");
    expect(err.message).toMatch(/rank 0 \(pid \d+ on .+\) lost its connection to Redis .* while rank 1 waited in `save .*kill\.ckpt`/);
    expect(one!.ms).toBeLessThan(30_000);
  });
});
