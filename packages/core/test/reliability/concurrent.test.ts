/**
 * Concurrent writers: two processes saving to the same path at the same moment end with exactly
 * one complete version (each writes its own temporary and renames it into place), and neither
 * removes the other's temporary while it is being written.
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Fabric, HostTensor, type StoredTensor } from "../../src/index.js";
import { crc32 } from "../../src/formats/zip/crc32.js";
import { bundleChild, Child, removeChild } from "./helpers/children.js";
import { fillVersion } from "./helpers/content.js";

const BYTES = 32 << 20;
let dir: string;
let script: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "savepoint-concurrent-"));
  script = await bundleChild("saver", { stubTfjs: true });
});
afterAll(() => {
  removeChild(script);
  rmSync(dir, { recursive: true, force: true });
});

async function expectOneVersion(path: string, written: Set<number>): Promise<number> {
  const ckpt = await new Fabric().load(path);
  const version = ckpt.version as number;
  expect(written.has(version), `version ${version} was written`).toBe(true);
  const bytes = await (ckpt.t as StoredTensor).bytes();
  expect(crc32(bytes) === crc32(fillVersion(new Uint8Array(BYTES), version)), `content of version ${version}`).toBe(true);
  expect(readdirSync(dir).filter((f) => f.includes(".savepoint-tmp-"))).toEqual([]);
  return version;
}

describe("two writers, one path", () => {
  it("two processes saving at once, three rounds of three versions each", async () => {
    const path = join(dir, "shared.ckpt");
    const winners: number[] = [];
    for (let round = 0; round < 3; round++) {
      const a = new Child(script, [path, String(1000 * round + 100), "3", String(BYTES)], { env: { ...process.env, SAVER_WAIT: "1" } });
      const b = new Child(script, [path, String(1000 * round + 200), "3", String(BYTES)], { env: { ...process.env, SAVER_WAIT: "1" } });
      await Promise.all([a.waitFor((l) => l === "ready", "ready"), b.waitFor((l) => l === "ready", "ready")]);
      a.send("go");
      b.send("go");
      const [ea, eb] = await Promise.all([a.exited, b.exited]);
      expect(ea.code, a.stderr).toBe(0);
      expect(eb.code, b.stderr).toBe(0);
      const written = new Set([...a.lines, ...b.lines].filter((l) => l.startsWith("done ")).map((l) => Number(l.split(" ")[1])));
      expect(written.size).toBe(6);
      winners.push(await expectOneVersion(path, written));
    }
    console.log(`[concurrent] last writer per round: ${winners.join(", ")}`);
  }, 120_000);

  it("two Fabrics in one process saving to the same path together", async () => {
    const path = join(dir, "inproc.ckpt");
    const versions = [1, 2, 3, 4];
    await Promise.all(versions.map((v) => new Fabric().save(path, { version: v, t: new HostTensor("uint8", [BYTES], fillVersion(new Uint8Array(BYTES), v)) })));
    await expectOneVersion(path, new Set(versions));
  });
});
