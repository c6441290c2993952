// Runs one of the repository's scripts (docs/scripts, scripts/) in a child process, the way CI and
// a developer run them, and hands back its exit status and output for the test to show on failure.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");

/** The scripts run the built packages; without them, fail with the fix rather than a riddle. */
export function requireBuilt(): void {
  for (const pkg of ["core", "strategy-ddp"]) {
    const entry = join(REPO, "packages", pkg, "dist/index.js");
    if (!existsSync(entry)) throw new Error(`[test setup] ${entry} is missing: run \`npm run build\` first.`);
  }
}

export interface ScriptRun {
  code: number | null;
  output: string;
  seconds: number;
}

export function runScript(command: string, args: string[], timeoutMs: number): Promise<ScriptRun> {
  return new Promise((done) => {
    const started = Date.now();
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1" };
    // The doc tests start vitest themselves; this run's variables must not leak into theirs.
    for (const k of Object.keys(env)) if (k.startsWith("VITEST")) delete env[k];
    const child = spawn(command, args, { cwd: REPO, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d));
    child.stderr.on("data", (d: Buffer) => (output += d));
    const timer = setTimeout(() => {
      output += `\n[test] killed after ${timeoutMs} ms\n`;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      done({ code, output, seconds: (Date.now() - started) / 1000 });
    });
  });
}
