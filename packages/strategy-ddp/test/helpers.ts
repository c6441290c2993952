// Shared by the multi-process DDP tests: run the training fixture under `savepoint run`, or as
// separately started processes, and read what each rank reported.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(here, "../../..");
export const CLI = join(REPO, "packages/core/dist/cli.js");
export const TRAIN = join(here, "fixtures/ddp-train.mjs");

/** Fails early, with the fix, when the packages the child processes import are not built. */
export function requireBuilt(): void {
  for (const f of [CLI, join(REPO, "packages/strategy-ddp/dist/index.js")]) {
    if (!existsSync(f)) throw new Error(`[test setup] ${f} is missing: run \`npm run build\` first (the ranks import the built packages).`);
  }
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  ms: number;
}

export function run(cmd: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<Exit> {
  return new Promise((resolveExit) => {
    const started = Date.now();
    const child = spawn(process.execPath, cmd, { cwd: REPO, env: { ...process.env, ...env }, stdio: ["ignore", "inherit", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      resolveExit({ code, signal, stderr, ms: Date.now() - started });
    });
  });
}

/** `savepoint run -n N ddp-train.mjs PHASE CKPT OUT KIND` */
export async function launchTraining(n: number, phase: string, ckpt: string, out: string, kind = "adam", extra: string[] = []): Promise<Exit> {
  mkdirSync(out, { recursive: true });
  return run([CLI, "run", "-n", String(n), "--grace-ms", "3000", ...extra, TRAIN, phase, ckpt, out, kind]);
}

/** What each rank wrote to OUT/rank-<r>.json, by rank. */
export function reports(out: string): Record<string, any>[] {
  const files = readdirSync(out).filter((f) => /^rank-\d+\.json$/.test(f));
  const list: Record<string, any>[] = [];
  for (const f of files) list[Number(/\d+/.exec(f)![0])] = JSON.parse(readFileSync(join(out, f), "utf8"));
  return list;
}
