import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Fabric } from "@savepoint/core";
import { launchTraining, reports, requireBuilt } from "./helpers.js";

let dir: string;
beforeAll(() => {
  requireBuilt();
  dir = mkdtempSync(join(tmpdir(), "savepoint-ddp-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("DDP across processes started by `savepoint run`", () => {
  for (const n of [2, 4]) {
    it(`${n} processes: train, save, stop, resume in new processes = uninterrupted run, bit for bit`, async () => {
      const ckpt = join(dir, `n${n}`, "step-10.ckpt");
      const first = await launchTraining(n, "first", ckpt, join(dir, `n${n}`, "first"));
      expect(first.code, first.stderr).toBe(0);
      expect(readdirSync(join(dir, `n${n}`)).filter((f) => f.endsWith(".ckpt"))).toEqual(["step-10.ckpt"]);

      const resumed = await launchTraining(n, "resume", ckpt, join(dir, `n${n}`, "resume"));
      expect(resumed.code, resumed.stderr).toBe(0);
      const full = await launchTraining(n, "full", "-", join(dir, `n${n}`, "full"));
      expect(full.code, full.stderr).toBe(0);

      const r = reports(join(dir, `n${n}`, "resume"));
      const f = reports(join(dir, `n${n}`, "full"));
      expect(r.length).toBe(n);
      expect(Object.keys(r[0]!.fingerprint).length).toBeGreaterThanOrEqual(10);
      for (let rank = 0; rank < n; rank++) {
        expect(r[rank]!.resumedAt).toBe(10);
        expect(r[rank]!.worldSize).toBe(n);
        expect(r[rank]!.fingerprint, `rank ${rank} resumed vs uninterrupted`).toEqual(f[rank]!.fingerprint);
        expect(r[rank]!.fingerprint, `rank ${rank} vs rank 0`).toEqual(r[0]!.fingerprint);
      }
      // The ranks trained on different shards: a one-process run would differ.
      expect(r[0]!.loss).not.toBe(r[1]!.loss);
    });
  }

  it("calling save on rank 0 only fails every rank at once, naming the rank that is elsewhere and where, instead of hanging", async () => {
    const out = join(dir, "rank0only");
    const exit = await launchTraining(2, "rank0only", join(dir, "rank0only.ckpt"), out, "adam", ["--timeout-ms", "60000"]);
    expect(exit.code).not.toBe(0);
    expect(exit.ms).toBeLessThan(30_000);
    const r = reports(out);
    for (const rank of [0, 1]) {
      expect(r[rank]!.error.name).toBe("CollectiveTimeoutError");
      expect(r[rank]!.error.message).toMatch(/rank 0 called allGather `save .*rank0only\.ckpt`, rank 1 called allGather `gradients of step 3`/);
      expect(r[rank]!.error.message).toMatch(/not inside `if \(rank === 0\)`/);
    }
    expect(existsSync(join(dir, "rank0only.ckpt"))).toBe(false);
  });

  it("killing rank 0 in the middle of a save leaves the previous checkpoint loadable; the survivors exit with the timeout error", async () => {
    const ckpt = join(dir, "kill", "last.ckpt");
    const out = join(dir, "kill", "out");
    const exit = await launchTraining(3, "kill", ckpt, out);
    expect(exit.code).toBe(128 + 9); // the launcher reports rank 0's SIGKILL
    expect(exit.stderr).toMatch(/\[savepoint\] rank 0 \(pid \d+\) was killed by SIGKILL/);
    const r = reports(out);
    expect(r[0]).toBeUndefined(); // rank 0 died before reporting
    for (const rank of [1, 2]) {
      expect(r[rank]!.error.name).toBe("CollectiveTimeoutError");
      expect(r[rank]!.error.message).toMatch(/^\[savepoint\] rank 0 \(pid \d+ on .+\) was killed by SIGKILL while ranks 1, 2 waited in `save .*last\.ckpt`/);
    }
    expect(exit.ms).toBeLessThan(30_000);
    // The previous checkpoint (step 5) is intact and loads.
    const state = { iteration: -1 };
    const remainder = await new Fabric().load(ckpt, state);
    expect(state.iteration).toBe(5);
    expect(Object.keys(remainder)).toEqual(["model", "optimizer", "hparams"]);
    expect(existsSync(ckpt)).toBe(true);
  });
});
