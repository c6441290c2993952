/**
 * CheckpointManager under SIGKILL: a child trains and saves every step (keepLast 2 plus keepBest 1)
 * and is killed at random moments. After every kill a fresh manager must restore the newest
 * committed step or a later one, with that step's content; retention must never have deleted it,
 * the pointer (when present) names a checkpoint that exists, and at most one save's worth of
 * extra files (an unfinished retention or sidecar) remains.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Fabric, HostTensor, type StoredTensor } from "../../src/index.js";
import { CheckpointManager } from "../../src/manager/checkpoint-manager.js";
import { crc32 } from "../../src/formats/zip/crc32.js";
import { bundleChild, Child, removeChild } from "./helpers/children.js";
import { fillVersion } from "./helpers/content.js";

const KILLS = Number(process.env.MANAGER_KILLS ?? 40);
const BYTES = 1 << 20;
let dir: string;
let script: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "savepoint-manager-crash-"));
  script = await bundleChild("manager-saver", { stubTfjs: true });
});
afterAll(() => {
  removeChild(script);
  rmSync(dir, { recursive: true, force: true });
});

describe("CheckpointManager killed at random moments", () => {
  it(`restores the newest committed step after each of ${KILLS} kills`, async () => {
    let next = 0;
    let committed = -1;
    let window = 150;
    const firstSave: number[] = [];
    let cutShort = 0;
    const started = performance.now();
    let child = new Child(script, [dir, String(BYTES)]);
    for (let k = 0; k < KILLS; k++) {
      await child.waitFor((l) => l === "ready", "ready");
      child.send(`go ${next}`);
      await new Promise((r) => setTimeout(r, Math.random() * window));
      await child.kill();
      // The next child starts up while this kill is checked.
      const upcoming = new Child(script, [dir, String(BYTES)]);
      const done = child.lines.filter((l) => l.startsWith("done ")).map((l) => l.split(" ").map(Number));
      if (done.length > 0) {
        committed = Math.max(committed, done[done.length - 1]![1]!);
        // Kills land anywhere in the first three saves, sized by how long a first save takes here.
        firstSave.push(done[0]![2]!);
        window = 3 * [...firstSave].sort((a, b) => a - b)[firstSave.length >> 1]!;
      }

      const state = { step: -1, t: new HostTensor("uint8", [BYTES], new Uint8Array(BYTES)) };
      const m = new CheckpointManager(new Fabric(), dir, { onWarning: (w) => expect.fail(`unexpected warning: ${w}`) });
      const r = await m.restore(state);
      child = upcoming;
      if (committed < 0 && r === null) continue;
      expect(r, `kill ${k}: nothing restored after step ${committed} was committed`).not.toBeNull();
      expect(r!.step, `kill ${k}`).toBeGreaterThanOrEqual(committed);
      expect(state.step).toBe(r!.step);
      expect(crc32(await (state.t as StoredTensor).bytes())).toBe(crc32(fillVersion(new Uint8Array(BYTES), r!.step)));

      const steps = (await m.list()).map((c) => c.step);
      // keepLast 2 + keepBest 1, plus one committed checkpoint per save whose retention a kill cut
      // short since the last save that finished (the next finished save removes them all).
      cutShort = done.length > 0 ? 1 : cutShort + 1;
      expect(steps.length, `kill ${k}: ${steps.join(",")}`).toBeLessThanOrEqual(3 + cutShort);
      const names = readdirSync(dir);
      if (names.includes("latest")) expect(steps).toContain(JSON.parse(readFileSync(join(dir, "latest"), "utf8")).step);
      const sidecars = names.filter((n) => n.endsWith(".meta.json") && !n.startsWith("."));
      // An orphan per cut-short removal, and the sidecar of a save killed before its commit.
      expect(sidecars.length, `kill ${k}: ${names.join(",")}`).toBeLessThanOrEqual(steps.length + cutShort + 1);
      next = r!.step + 1;
    }
    await child.kill();
    // One save that finishes applies retention to everything the kills left.
    const m = new CheckpointManager(new Fabric(), dir, { keepLast: 2, keepBest: { metric: "loss", mode: "min", k: 1 } });
    const last = (await m.latest())!.step;
    await m.save(last + 1, { step: last + 1 }, { loss: 99 });
    const best = (await m.list()).reduce((b, c) => (c.metrics.loss! < b.metrics.loss! ? c : b));
    expect((await m.list()).map((c) => c.step)).toEqual([...new Set([best.step, last, last + 1])].sort((a, b) => a - b));
    expect(readdirSync(dir).filter((n) => n.includes(".savepoint-tmp-"))).toEqual([]);
    expect(readdirSync(dir).filter((n) => n.endsWith(".meta.json")).length).toBe((await m.list()).length);
    console.log(`[manager-crash] ${KILLS} kills in ${((performance.now() - started) / 1000).toFixed(1)} s; last committed step ${committed}, kill window ${window.toFixed(0)} ms.`);
    expect(committed).toBeGreaterThan(KILLS / 4);
  }, 180_000);
});
