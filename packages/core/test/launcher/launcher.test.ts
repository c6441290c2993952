import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../src/errors.js";
import { parseRunArgs } from "../../src/launcher/run-command.js";
import { REPO } from "../helpers/fixtures.js";

const CLI = join(REPO, "packages/core/dist/cli.js");
const RANK = join(REPO, "packages/core/test/launcher/fixtures/rank.mjs");
let dir: string;
beforeAll(() => {
  if (!existsSync(CLI)) throw new Error(`[test setup] ${CLI} is missing: build @savepoint/core first (npm run build -w @savepoint/core).`);
  dir = mkdtempSync(join(tmpdir(), "savepoint-launcher-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cli(args: string[], options: { env?: Record<string, string>; onStart?: (pid: number) => void } = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string; ms: number }>((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, [CLI, ...args], { cwd: REPO, env: { ...process.env, ...options.env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    options.onStart?.(child.pid!);
    child.on("exit", (code) => resolve({ code, stdout, stderr, ms: Date.now() - started }));
  });
}
const read = (name: string) => JSON.parse(readFileSync(join(dir, name), "utf8"));
const waitFor = async (file: string, ms = 20_000) => {
  const end = Date.now() + ms;
  while (!existsSync(join(dir, file))) {
    if (Date.now() > end) throw new Error(`${file} never appeared`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe("savepoint CLI", () => {
  it("--help lists the commands", async () => {
    const r = await cli(["--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Usage: savepoint <command>/);
    expect(r.stdout).toMatch(/^\s+run\s+start N processes/m);
  });

  it("an unknown command or a missing -n is an error with the usage", async () => {
    const a = await cli(["fly"]);
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(/unknown command "fly"/);
    const b = await cli(["run", "x.mjs"]);
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/needs the number of processes: -n N/);
  });
});

describe("parseRunArgs", () => {
  it("reads options before the script and passes everything after it to the script", () => {
    expect(parseRunArgs(["-n", "2", "train.js", "--lr", "0.1", "-n", "9"])).toEqual({ nproc: 2, script: "train.js", args: ["--lr", "0.1", "-n", "9"], nodeArgs: [], timeoutMs: undefined, graceMs: undefined });
    expect(parseRunArgs(["--nproc=4", "--timeout-ms", "500", "--grace-ms=100", "--node-arg", "--enable-source-maps", "--", "t.mjs"])).toEqual({ nproc: 4, script: "t.mjs", args: [], nodeArgs: ["--enable-source-maps"], timeoutMs: 500, graceMs: 100 });
    expect(parseRunArgs(["--nproc-per-node", "3", "t.mjs"])).toMatchObject({ nproc: 3 });
    expect(parseRunArgs(["-n4", "t.mjs"])).toMatchObject({ nproc: 4 });
    expect(parseRunArgs(["--help"])).toBe("help");
  });

  it("rejects bad values naming the option", () => {
    expect(() => parseRunArgs(["-n", "0", "t.js"])).toThrow(InvalidArgumentError);
    expect(() => parseRunArgs(["-n", "two", "t.js"])).toThrow(/-n must be a positive integer, got "two"/);
    expect(() => parseRunArgs(["--bogus", "t.js"])).toThrow(/unknown option --bogus/);
    expect(() => parseRunArgs(["-n", "2"])).toThrow(/needs the script/);
  });
});

describe("savepoint run", () => {
  it("starts N ranks with torchrun's variables and the script's arguments, and exits 0 when they do", async () => {
    const r = await cli(["run", "-n", "3", "--timeout-ms", "4321", RANK, "env", dir, "a1", "--flag"], { env: { EXTRA: "kept" } });
    expect(r.code, r.stderr).toBe(0);
    const pids = new Set<number>();
    for (const rank of [0, 1, 2]) {
      const e = read(`env-${rank}.json`);
      expect(e.env).toMatchObject({ RANK: String(rank), WORLD_SIZE: "3", LOCAL_RANK: String(rank), LOCAL_WORLD_SIZE: "3", MASTER_ADDR: "127.0.0.1", SAVEPOINT_TIMEOUT_MS: "4321", EXTRA: "kept" });
      expect(Number(e.env.MASTER_PORT)).toBeGreaterThan(0);
      expect(e.args).toEqual(["a1", "--flag"]);
      expect(e.timeoutMs).toBe(4321);
      e.pids.forEach((p: number) => pids.add(p));
    }
    expect(pids.size).toBe(3);
  });

  it("when a rank exits non-zero: the waiting ranks fail at once naming it, the others are stopped, and the exit code is non-zero", async () => {
    const r = await cli(["run", "-n", "3", "--grace-ms", "500", "--timeout-ms", "60000", RANK, "fail", dir]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/\[savepoint\] rank 1 \(pid \d+\) exited with code 3/);
    const err = read("error-0.json");
    expect(err.name).toBe("CollectiveTimeoutError");
    expect(err.message).toMatch(/rank 1 \(pid \d+ on .+\) exited with code 3 while rank 0 waited in `save ck\/f\.ckpt`/);
    expect(err.ms).toBeLessThan(15_000);
    expect(read("sigterm-2.json")).toBe(true); // the busy rank was stopped by the launcher
    expect(r.ms).toBeLessThan(20_000);
  });

  it("forwards SIGTERM to every rank and exits non-zero", async () => {
    let launcher = 0;
    const run = cli(["run", "-n", "2", "--grace-ms", "2000", RANK, "signal", dir], { onStart: (pid) => (launcher = pid) });
    await waitFor("ready-0.json");
    await waitFor("ready-1.json");
    process.kill(launcher, "SIGTERM");
    const r = await run;
    expect(r.code).toBe(143);
    expect(read("sigterm-0.json")).toBe(true);
    expect(read("sigterm-1.json")).toBe(true);
  });
});
