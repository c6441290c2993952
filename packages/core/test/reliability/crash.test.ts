/**
 * Crash safety: a child saves a 64 MiB checkpoint to one path in a loop and is killed with SIGKILL
 * at random moments of its saves, 200 times. After every kill the path must load as exactly one
 * of the versions written (its content hash matching that version), never a mix or a damaged file;
 * a killed save's temporary is removed by the next save to the folder.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Fabric, HostTensor, isStoredTensor, type StoredTensor } from "../../src/index.js";
import { crc32 } from "../../src/formats/zip/crc32.js";
import { bundleChild, Child, removeChild } from "./helpers/children.js";
import { fillVersion } from "./helpers/content.js";

const KILLS = Number(process.env.CRASH_KILLS ?? 200);
const BYTES = 64 << 20;

let dir: string;
let script: string;
beforeAll(async () => {
  // SIGKILL leaves the page cache intact, so a tmpfs tests the same atomicity as a disk (fsync
  // matters only for power loss) while keeping 200 saves of 64 MiB fast. CRASH_DIR overrides.
  const base = process.env.CRASH_DIR ?? (existsSync("/dev/shm") ? "/dev/shm" : tmpdir());
  dir = mkdtempSync(join(base, "savepoint-crash-"));
  script = await bundleChild("saver", { stubTfjs: true });
});
afterAll(() => {
  removeChild(script);
  rmSync(dir, { recursive: true, force: true });
});

const temporaries = () => readdirSync(dir).filter((f) => f.includes(".savepoint-tmp-"));

const scratch = new Uint8Array(BYTES);
/** Reused for every read-back, so 200 checks do not churn 13 GiB through the allocator. */
const readBuffer = new Uint8Array(BYTES);
const crcs = new Map<number, number>();
/** CRC-32 of version v's tensor, from the same generator the child uses. */
function crcOf(version: number): number {
  let c = crcs.get(version);
  if (c === undefined) crcs.set(version, (c = crc32(fillVersion(scratch, version))));
  return c;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

describe("SIGKILL during saves", () => {
  it(`leaves one complete version after each of ${KILLS} kills`, async () => {
    const path = join(dir, "run.ckpt");
    await new Fabric().save(path, { version: 0, t: new HostTensor("uint8", [BYTES], fillVersion(new Uint8Array(BYTES), 0)) });
    // The check reads the tensor itself and compares its hash with the version's, which is
    // stronger than the record CRC, so that one pass is skipped to keep 200 checks quick.
    const reader = new Fabric({ verify: false });
    const saverEnv = { ...process.env, SAVER_WAIT: "1" };

    let nextVersion = 1;
    const spawnNext = () => {
      const c = new Child(script, [path, String(nextVersion), "0", String(BYTES)], { env: saverEnv });
      nextVersion += 1000;
      return c;
    };
    // An uninterrupted child first checks the normal path and times a first save from "go".
    const probe = spawnNext();
    await probe.waitFor((l) => l === "ready", "ready");
    probe.send("go");
    await probe.waitFor((l) => l.startsWith("done "), "a first save");
    await probe.kill();
    const firstSave = [Number(probe.lines.find((l) => l.startsWith("done "))!.split(" ")[2])];

    const begun = new Set([0]);
    for (const l of probe.lines) if (l.startsWith("begin ")) begun.add(Number(l.slice(6)));
    let withTemporary = 0;
    let committed = 0;
    let lastVersion = -1;
    let changed = 0;
    let window = 0;
    const started = performance.now();
    let child = spawnNext();
    for (let k = 0; k < KILLS; k++) {
      // Kills land anywhere from "go" (the first fill) to half way past the end of the first save,
      // sized from the first saves seen so far, which this machine's load can slow down.
      window = 1.5 * median(firstSave);
      await child.waitFor((l) => l === "ready", "ready");
      child.send("go");
      await new Promise((r) => setTimeout(r, Math.random() * window));
      await child.kill();
      for (const l of child.lines) if (l.startsWith("begin ")) begun.add(Number(l.slice(6)));
      const done = child.lines.filter((l) => l.startsWith("done "));
      committed += done.length;
      if (done.length > 0) firstSave.push(Number(done[0]!.split(" ")[2]));
      const temps = temporaries();
      if (temps.length > 0) withTemporary++;
      // Only the killed save's own temporary may remain: earlier ones were removed by later saves.
      expect(temps.length, `temporaries after kill ${k}: ${temps.join(", ")}`).toBeLessThanOrEqual(1);

      // The next child starts now and waits for "go", so its start-up overlaps the check below.
      const next = k + 1 < KILLS ? spawnNext() : undefined;
      const ckpt = await reader.load(path);
      const version = ckpt.version as number;
      expect(begun.has(version), `kill ${k}: version ${version} was never written`).toBe(true);
      expect(isStoredTensor(ckpt.t)).toBe(true);
      const bytes = await (ckpt.t as StoredTensor).readRange(0, BYTES, readBuffer);
      expect(crc32(bytes) === crcOf(version), `kill ${k}: the tensor is not version ${version}'s`).toBe(true);
      if (version !== lastVersion) changed++;
      lastVersion = version;
      if (next) child = next;
    }
    const seconds = (performance.now() - started) / 1000;

    // The next save, from any process, removes the temporary of the last killed one.
    await new Fabric().save(path, { version: -1, t: new HostTensor("uint8", [4], new Uint8Array(4)) });
    expect(temporaries()).toEqual([]);
    console.log(
      `[crash] ${KILLS} SIGKILLs in ${seconds.toFixed(1)} s on ${dir} (first save ≈ ${median(firstSave).toFixed(0)} ms after "go", kill window ${window.toFixed(0)} ms): ` +
        `${withTemporary} kills left a partial temporary, ${committed} saves committed before a kill, the loaded version changed ${changed} times.`,
    );
    // The kills must really have landed inside saves, and often enough after a commit too.
    expect(withTemporary).toBeGreaterThan(KILLS / 4);
    expect(committed).toBeGreaterThan(KILLS / 10);
  }, 300_000);
});
