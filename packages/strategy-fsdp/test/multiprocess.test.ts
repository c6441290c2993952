import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Fabric, UnsupportedFormatError } from "@savepoint/core";

const here = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(here, "../../..");
const CLI = join(REPO, "packages/core/dist/cli.js");
const TRAIN = join(here, "fixtures/fsdp-train.mjs");

interface Exit {
  code: number | null;
  stderr: string;
  ms: number;
}

/** `savepoint run -n N fsdp-train.mjs PHASE DIR OUT` */
function launch(n: number, phase: string, dir: string, out: string): Promise<Exit> {
  mkdirSync(out, { recursive: true });
  return new Promise((done) => {
    const started = Date.now();
    const child = spawn(process.execPath, [CLI, "run", "-n", String(n), "--grace-ms", "3000", TRAIN, phase, dir, out], { cwd: REPO, stdio: ["ignore", "inherit", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      done({ code, stderr, ms: Date.now() - started });
    });
  });
}

type Holdings = { rows: Record<string, string>; iterations: number; accBeta1: string; accBeta2: string; iteration: number };

/** What the ranks reported, by rank. */
function reports(out: string): Record<string, any>[] {
  const list: Record<string, any>[] = [];
  for (const f of readdirSync(out).filter((f) => /^rank-\d+\.json$/.test(f))) list[Number(/\d+/.exec(f)![0])] = JSON.parse(readFileSync(join(out, f), "utf8"));
  return list;
}

/** The whole state from every rank's rows, in rank order (hex strings concatenate as bytes do). */
function assemble(parts: Holdings[]): Record<string, unknown> {
  const rows: Record<string, string> = {};
  for (const k of Object.keys(parts[0]!.rows)) rows[k] = parts.map((p) => p.rows[k] ?? "").join("");
  const { iterations, accBeta1, accBeta2, iteration } = parts[0]!;
  for (const p of parts) expect([p.iterations, p.accBeta1, p.accBeta2, p.iteration]).toEqual([iterations, accBeta1, accBeta2, iteration]);
  return { rows, iterations, accBeta1, accBeta2, iteration };
}

let dir: string;
beforeAll(() => {
  for (const f of [CLI, join(REPO, "packages/strategy-fsdp/dist/index.js")]) {
    if (!existsSync(f)) throw new Error(`[test setup] ${f} is missing: run \`npm run build\` first (the ranks import the built packages).`);
  }
  dir = mkdtempSync(join(tmpdir(), "savepoint-fsdp-mp-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("FSDP across processes started by `savepoint run`", () => {
  it("2 processes train and save sharded and full; 1, 2 and 4 processes resume each: model and optimizer state equal the 2-process run's, bit for bit", async () => {
    const first = await launch(2, "first", dir, join(dir, "first"));
    expect(first.code, first.stderr).toBe(0);
    expect(readdirSync(join(dir, "sharded")).sort()).toEqual([".metadata", ".metadata.crc32", "__0_0.distcp", "__1_0.distcp", "meta.pt"]);
    const saved = assemble(reports(join(dir, "first")).map((r) => r.saved));
    expect(Object.keys((saved as { rows: object }).rows).length).toBe(12);
    for (const n of [1, 2, 4]) {
      const out = join(dir, `resume-${n}`);
      const exit = await launch(n, "resume", dir, out);
      expect(exit.code, exit.stderr).toBe(0);
      const r = reports(out);
      expect(r.length).toBe(n);
      for (const kind of ["sharded", "full.ckpt"]) expect(assemble(r.map((x) => x[kind])), `${kind} into ${n} processes`).toEqual(saved);
    }
  });

  it("killing rank 0 in the middle of a sharded save: the previous checkpoint at that path still loads, the unfinished folder is no checkpoint", async () => {
    const kill = join(dir, "kill");
    mkdirSync(kill, { recursive: true });
    const exit = await launch(2, "kill", kill, join(kill, "out"));
    expect(exit.code).toBe(128 + 9); // the launcher reports rank 0's SIGKILL
    expect(exit.stderr).toMatch(/rank 0 \(pid \d+\) was killed by SIGKILL/);
    const survivor = reports(join(kill, "out"))[1]!;
    expect(survivor.error.name).toBe("CollectiveTimeoutError");
    expect(survivor.error.message).toMatch(/rank 0 .*killed by SIGKILL.*`save .*last`/);
    // The checkpoint at the path is the first save's, whole.
    const state = { iteration: -1 };
    const remainder = await new Fabric().load(join(kill, "last"), state);
    expect(state.iteration).toBe(3);
    expect(Object.keys(remainder).sort()).toEqual(["model", "optimizer"]);
    // The second save's folder was left beside it, without .metadata: loading it is refused.
    const left = readdirSync(kill).filter((f) => f.startsWith(".last.savepoint-dcp-"));
    expect(left.length).toBe(1);
    expect(readdirSync(join(kill, left[0]!))).not.toContain(".metadata");
    await expect(new Fabric().load(join(kill, left[0]!))).rejects.toBeInstanceOf(UnsupportedFormatError);
  });
});
