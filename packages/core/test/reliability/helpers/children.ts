import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
/** Bundles live inside the repository so that externals resolve from its node_modules. */
const OUT = resolve(here, "../../../.tmp/reliability");

/**
 * Bundles a child script (TypeScript importing src/) into one ESM file that plain `node` runs.
 * esbuild comes with tsup; bundling takes ~0.1 s and keeps children testing the sources, not dist/.
 *
 * `stubTfjs` replaces tfjs-core with an empty module: importing it is most of a child's start-up
 * (~250 ms), and children that save only HostTensors never call it; if one did, it would fail
 * loudly on an undefined function rather than pass.
 */
export async function bundleChild(name: string, options: { stubTfjs?: boolean } = {}): Promise<string> {
  const { build } = await import("esbuild");
  mkdirSync(OUT, { recursive: true });
  const outfile = join(OUT, `${name}${options.stubTfjs ? "-stub" : ""}-${process.pid}.mjs`);
  await build({
    entryPoints: [resolve(here, "../children", `${name}.ts`)],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outfile,
    external: ["@tensorflow/*", "ioredis"],
    logLevel: "error",
    plugins: options.stubTfjs
      ? [
          {
            name: "stub-tfjs",
            setup(b) {
              b.onResolve({ filter: /^@tensorflow\/tfjs-(core|backend-cpu|layers)$/ }, (args) => ({ path: args.path, namespace: "stub" }));
              b.onLoad({ filter: /.*/, namespace: "stub" }, () => ({ contents: "export {};", loader: "js" }));
            },
          },
        ]
      : [],
  });
  // Per-process names keep parallel test files apart; callers remove theirs (removeChild).
  return outfile;
}

/** Removes a bundle made by {@link bundleChild}. */
export function removeChild(outfile: string | undefined): void {
  if (outfile) rmSync(outfile, { force: true });
}

/** A child whose stdout lines are collected and can be awaited. */
export class Child {
  readonly proc: ChildProcess;
  readonly lines: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr = "";
  readonly #waiters: { test: (l: string) => boolean; resolve: (l: string) => void }[] = [];

  constructor(script: string, args: string[], options: SpawnOptions = {}) {
    this.proc = spawn(process.execPath, [script, ...args], { stdio: ["pipe", "pipe", "pipe"], ...options });
    createInterface({ input: this.proc.stdout! }).on("line", (line) => {
      this.lines.push(line);
      for (let i = this.#waiters.length - 1; i >= 0; i--) {
        if (this.#waiters[i]!.test(line)) this.#waiters.splice(i, 1)[0]!.resolve(line);
      }
    });
    this.proc.stderr!.on("data", (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((res) => this.proc.once("exit", (code, signal) => res({ code, signal })));
  }

  /** Resolves with the first line (already seen or future) that passes `test`. */
  waitFor(test: (line: string) => boolean, what: string, timeoutMs = 30_000): Promise<string> {
    const seen = this.lines.find(test);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`child did not print ${what} within ${timeoutMs} ms; stderr: ${this.stderr}`)), timeoutMs);
      this.#waiters.push({ test, resolve: (l) => (clearTimeout(timer), res(l)) });
      void this.exited.then(({ code, signal }) => rej(new Error(`child exited (${code ?? signal}) before printing ${what}; stderr: ${this.stderr}`)));
    });
  }

  send(line: string): void {
    this.proc.stdin!.write(`${line}\n`);
  }

  async kill(): Promise<void> {
    this.proc.kill("SIGKILL");
    await this.exited;
  }
}
