/** Every real torch zip checkpoint in the shared fixtures parses and every entry's CRC verifies. */
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { readZip, verifyEntry } from "../../src/formats/zip/reader.js";
import { MemorySource } from "./memory-io.js";

const ROOT = "/work/shared/fixtures";
/** Pre-1.6 torch files: pickles in a row, not zips. */
const LEGACY = ["burn/torch-legacy/", "opennmt-legacy/", "pyannote-legacy/"];

async function checkpointFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const d of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, d.name);
    if (d.isDirectory()) out.push(...(await checkpointFiles(path)));
    else if (d.isFile() && /\.(pt|ckpt|pth)$/.test(d.name)) out.push(path);
  }
  return out;
}

const files = existsSync(ROOT)
  ? (await checkpointFiles(ROOT)).filter((f) => !LEGACY.some((l) => relative(ROOT, f).startsWith(l))).sort()
  : [];

describe.skipIf(files.length === 0)("real torch.save fixtures", () => {
  it("finds the fixtures", () => {
    expect(files.length).toBeGreaterThan(40);
  });

  it.each(files.map((f) => [relative(ROOT, f), f]))("%s", async (_, path) => {
    const archive = await readZip(new MemorySource(new Uint8Array(await readFile(path)), path));
    expect(archive.entries.some((e) => e.name.endsWith("/data.pkl"))).toBe(true);
    for (const e of archive.entries) {
      if (/\/data\/\d+$/.test(e.name)) expect(e.dataOffset % 64).toBe(0);
      await verifyEntry(archive, e);
    }
  });
});
