// Peak resident memory while saving and loading a 2 GiB model stays within the state plus 256 MiB:
// measured in a child process (VmHWM, reset before each step) whose V8 heap is capped at 256 MiB.
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { freemem } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleChild, GiB, MiB, scratchDir } from "./helpers.js";

const STATE_GIB = 2;
const LIMIT = 256 * MiB;
let child: string;
const scratch = scratchDir("rss");

beforeAll(async () => {
  child = await bundleChild("peak-rss");
});
afterAll(() => {
  rmSync(child, { force: true });
  scratch.remove();
});

describe(`peak RSS while saving and loading a ${STATE_GIB} GiB model`, () => {
  it.skipIf(freemem() < (STATE_GIB + 2) * GiB)("stays within the state + 256 MiB, with the V8 heap capped at 256 MiB", () => {
    const out = execFileSync(process.execPath, ["--expose-gc", "--max-old-space-size=256", child, join(scratch.dir, "model.pt"), String(STATE_GIB)], { encoding: "utf8", maxBuffer: 1 << 20 });
    const r = JSON.parse(out.split("\n").find((l) => l.startsWith("RESULT "))!.slice(7)) as { stateBytes: number; base: number; built: number; savePeak: number; loadPeak: number; restored: boolean };
    const over = (peak: number) => peak - r.base - r.stateBytes;
    const report = `state ${(r.stateBytes / GiB).toFixed(2)} GiB, process before it ${(r.base / MiB).toFixed(0)} MiB; peak over state: save ${(over(r.savePeak) / MiB).toFixed(0)} MiB, load ${(over(r.loadPeak) / MiB).toFixed(0)} MiB`;
    console.log(report);
    expect(r.stateBytes).toBeGreaterThanOrEqual(STATE_GIB * GiB * 0.99);
    expect(r.restored).toBe(true);
    expect(over(r.savePeak), report).toBeLessThanOrEqual(LIMIT);
    expect(over(r.loadPeak), report).toBeLessThanOrEqual(LIMIT);
  });
});
