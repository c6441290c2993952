#!/usr/bin/env node
// Runs the code of the docs pages against the built packages, so a tutorial whose code breaks
// fails the build. Usage: node docs/scripts/doctest.mjs [page.md ...]  (default: every page)
//
// What runs, per page, in a fresh folder of its own (outside the repository, with the workspace's
// node_modules linked in, as a user's project would have them installed):
//   ts / js blocks      all of a page's blocks join into one program (imports merged), which is
//                       type-checked strictly and run with node; where the page has a sh or python
//                       block between two of them, the program pauses there until that block has run
//   ts file=NAME        written to NAME (a .ts file is also compiled to .js, as tsc would) and run
//                       only by a later block, e.g. `npx savepoint run -n 2 train.js`
//   sh / bash           run with bash -euo pipefail; `exit=N` expects that exit status
//   sh with only `npm install ...` lines
//                       not run: every package named must be one of ours or installed here
//   python              run with /usr/bin/python3 (torch); without torch outside CI, the
//                       `fallback=NAME` function of fallbacks.mjs writes the same files instead
//   skip="why"          never run (e.g. browser-only code); listed in the report
//   pending="@savepoint/x" or pending="@savepoint/core#Name"
//                       not run while that package or export does not exist; once it does,
//                       the block must be made runnable (an error under CI, a warning elsewhere)
//   text, json, console, ...   output shown to the reader, not code
// Front matter: `doctest-requires: webgpu` (probe for a WebGPU adapter in Node first; without one
// the page is reported as not run), `doctest-timeout: SECONDS` (per program or block; default 120).
// Under CI=true nothing is skipped for a missing tool: no torch or no WebGPU adapter is a failure.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import ts from "typescript";
import { readPage } from "./markdown.mjs";
import { assemble, COMPILER_OPTIONS, transpile } from "./program.mjs";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const DOCS = join(ROOT, "docs");
const CI = process.env.CI === "true" || process.env.CI === "1";
// DOCTEST_PYTHON points elsewhere, e.g. to try the fallbacks on a machine that has torch.
const PYTHON = process.env.DOCTEST_PYTHON ?? "/usr/bin/python3";

const RUNNABLE = { ts: "ts", typescript: "ts", js: "ts", javascript: "ts", mjs: "ts", sh: "sh", bash: "sh", shell: "sh", python: "python", py: "python" };
const DISPLAY = new Set(["text", "txt", "console", "json", "jsonc", "yaml", "yml", "diff", "ini", "toml", "html", "xml", "md", "markdown", "log"]);

/** Every page of the site we write (the generated API reference has no runnable code). */
export function docPages(dir = DOCS) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name.startsWith(".") || entry.name === "node_modules" || (dir === DOCS && (entry.name === "api" || entry.name === "scripts"))) continue;
    const full = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...docPages(full));
    else if (entry.name.endsWith(".md")) out.push(full);
  }
  return out.sort();
}

/** The workspace packages by name, with their folders. */
export function workspacePackages() {
  const out = new Map();
  for (const name of readdirSync(join(ROOT, "packages"))) {
    const pj = join(ROOT, "packages", name, "package.json");
    if (existsSync(pj)) out.set(JSON.parse(readFileSync(pj, "utf8")).name, join(ROOT, "packages", name));
  }
  return out;
}

/** Package names of an `npm install a b@1 -D` line; null when the line is something else. */
function installedNames(line) {
  const m = /^npm\s+(?:install|i|add)\s+(.*)$/.exec(line.trim());
  if (!m) return null;
  return m[1]
    .split(/\s+/)
    .filter((w) => w && !w.startsWith("-"))
    .map((w) => (w.lastIndexOf("@") > 0 ? w.slice(0, w.lastIndexOf("@")) : w));
}

/**
 * Splits a page into its program (the ts blocks), the files it writes, and the other steps, each
 * with `at`: the number of program blocks before it (the program pauses there to run it).
 * @param {ReturnType<typeof readPage>} page
 */
export function planPage(page) {
  const rel = relative(ROOT, page.file);
  const program = [];
  const files = [];
  const steps = [];
  const skipped = [];
  const problems = [];
  for (const b of page.blocks) {
    const where = `${rel}:${b.line}`;
    b.file = rel;
    const kind = RUNNABLE[b.lang];
    if (!kind) {
      if (!DISPLAY.has(b.lang)) problems.push(`${where}: code block language "${b.lang}" is neither runnable nor output; use ts, sh, python, or text for output`);
      continue;
    }
    if (b.meta.skip !== undefined || b.meta.pending !== undefined) {
      if (b.meta.skip === true || b.meta.pending === true) problems.push(`${where}: say why the block does not run: skip="reason" or pending="@savepoint/package"`);
      skipped.push({ where, reason: b.meta.skip ?? `pending on ${b.meta.pending}`, pending: typeof b.meta.pending === "string" ? b.meta.pending : undefined });
      continue;
    }
    const at = program.length;
    if (kind === "ts") {
      if (typeof b.meta.file === "string") files.push({ name: b.meta.file, block: b });
      else program.push(b);
      continue;
    }
    if (kind === "sh") {
      const lines = b.code.split("\n").filter((l) => l.trim() && !l.trim().startsWith("#"));
      const installs = lines.map(installedNames);
      if (installs.every(Boolean) && lines.length > 0) {
        steps.push({ kind: "install", block: b, at, packages: installs.flat() });
        continue;
      }
      if (installs.some(Boolean)) problems.push(`${where}: put npm install lines in a block of their own (they are checked, not run)`);
      steps.push({ kind: "sh", block: b, at, exit: Number(b.meta.exit ?? 0) });
      continue;
    }
    steps.push({ kind: "python", block: b, at, fallback: typeof b.meta.fallback === "string" ? b.meta.fallback : undefined });
  }
  return { page, rel, program, files, steps, skipped, problems };
}

/** Is the thing a `pending=` block waits for there now: the module resolves (and has the export)? */
async function pendingAvailable(spec) {
  const [name, exported] = spec.split("#");
  try {
    const mod = await import(pathToFileURL(createRequire(join(ROOT, "package.json")).resolve(name)).href);
    return !exported || exported in mod;
  } catch {
    return false;
  }
}

/** Writes a page's program and files into `dir`; returns what to type-check. */
function materialize(plan, dir) {
  mkdirSync(dir, { recursive: true });
  const checks = [];
  if (plan.program.length > 0) {
    const pauses = new Set(plan.steps.filter((s) => s.kind !== "install" && s.at < plan.program.length).map((s) => s.at));
    const { source, origins } = assemble(plan.program, pauses);
    plan.ts = join(dir, "program.ts");
    plan.js = join(dir, "program.mjs");
    plan.origins = origins;
    writeFileSync(plan.ts, source);
    writeFileSync(plan.js, transpile(source, plan.ts));
    checks.push({ path: plan.ts, origin: (line) => origins[line - 1] });
  }
  for (const f of plan.files) {
    const path = join(dir, f.name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, `${f.block.code}\n`);
    const origin = (line) => ({ file: f.block.file, line: f.block.line + line });
    if (/\.[cm]?tsx?$/.test(f.name)) {
      checks.push({ path, origin });
      // Test files run under vitest, which compiles them itself; other scripts run with node.
      if (!/\.(test|spec)\.tsx?$/.test(f.name)) writeFileSync(path.replace(/\.ts$/, ".js"), transpile(f.block.code, path));
    }
  }
  return checks;
}

/** Type-checks every generated TypeScript file in one program; returns messages at markdown lines. */
function typecheck(checks) {
  if (checks.length === 0) return [];
  const program = ts.createProgram(
    checks.map((c) => c.path),
    COMPILER_OPTIONS,
  );
  const byPath = new Map(checks.map((c) => [resolve(c.path), c]));
  const out = [];
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(d.messageText, "\n");
    const check = d.file && byPath.get(resolve(d.file.fileName));
    if (!d.file || !check) {
      out.push(`TypeScript: ${message}`);
      continue;
    }
    const line = d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1;
    const o = check.origin(line) ?? { file: check.path, line };
    out.push({ file: o.file, text: `${o.file}:${o.line}: TS${d.code}: ${message}` });
  }
  return out;
}

/** Runs a command; resolves with its status and its stdout+stderr interleaved. */
function execute(cmd, args, options) {
  return new Promise((done) => {
    const child = spawn(cmd, args, { cwd: options.cwd, env: options.env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => {
      out += `\n[doctest] timed out after ${options.timeoutMs} ms\n`;
      child.kill("SIGKILL");
    }, options.timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      done({ code: code ?? (signal ? 128 : 1), out });
    });
  });
}

/** The environment steps run in: our bins first; no vitest variables leaking into a nested vitest. */
function stepEnv(dir) {
  const env = { ...process.env, PATH: `${join(dir, "node_modules", ".bin")}:${process.env.PATH}` };
  for (const k of Object.keys(env)) if (k.startsWith("VITEST") || k === "FORCE_COLOR" || k === "NODE_OPTIONS") delete env[k];
  env.NO_COLOR = "1";
  return env;
}

let torchProbe;
/** Why /usr/bin/python3 cannot run torch here, or null when it can. */
function torchMissing() {
  torchProbe ??= (() => {
    if (!existsSync(PYTHON)) return `${PYTHON} is missing`;
    const r = spawnSync(PYTHON, ["-c", "import torch"], { encoding: "utf8" });
    return r.status === 0 ? null : `torch does not import in ${PYTHON} (Debian: apt-get install python3-torch)`;
  })();
  return torchProbe;
}

/** Replaces positions in the generated program by the markdown lines they came from. */
function mapOutput(out, plan) {
  if (!plan.ts) return out;
  const name = plan.ts.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return out.replace(new RegExp(`(?:file://)?${name}:(\\d+)(?::\\d+)?`, "g"), (m, line) => {
    const o = plan.origins[Number(line) - 1];
    return o ? `${o.file}:${o.line}` : m;
  });
}

/** Runs one shell, Python or install step; returns null when it passed, else why not. */
async function runStep(step, plan, dir, env, packages, log, notes) {
  const b = step.block;
  const where = `${b.file}:${b.line}`;
  const timeoutMs = Number(plan.page.frontMatter["doctest-timeout"] ?? 120) * 1000;
  if (step.kind === "install") {
    const unknown = step.packages.filter((name) => !packages.has(name) && !resolvable(name));
    return unknown.length > 0 ? `${where}: npm install names ${unknown.join(", ")}, which is neither a workspace package nor installed here` : null;
  }
  if (step.kind === "sh") {
    const r = await execute("bash", ["-euo", "pipefail", "-c", b.code], { cwd: dir, env, timeoutMs });
    if (r.out.trim()) log.push(`${where}:\n${indent(r.out)}`);
    return r.code === step.exit ? null : `${where}: the shell block exited ${r.code}, expected ${step.exit}:\n${r.out}`;
  }
  const missing = torchMissing();
  if (missing) {
    if (CI) return `${where}: needs PyTorch, and under CI it must be there: ${missing}`;
    // A block that only reads files (no fallback=) has nothing to stand in for it.
    if (!step.fallback) {
      notes.push(`${where}: not run: ${missing}`);
      return null;
    }
    const fallbacks = await import("./fallbacks.mjs");
    const fn = fallbacks[step.fallback];
    if (typeof fn !== "function") return `${where}: fallback "${step.fallback}" is not in docs/scripts/fallbacks.mjs`;
    await fn(dir);
    notes.push(`${where}: ${missing}; wrote its files with fallbacks.${step.fallback} instead`);
    return null;
  }
  const file = join(dir, `python-${b.line}.py`);
  writeFileSync(file, `${b.code}\n`);
  const r = await execute(PYTHON, [file], { cwd: dir, env, timeoutMs });
  if (r.out.trim()) log.push(`${where}:\n${indent(r.out)}`);
  return r.code === 0 ? null : `${where}: the Python block failed (exit ${r.code}):\n${r.out}`;
}

/**
 * Runs a page in `dir`: its program with node, pausing where the page has other steps, which run
 * then; steps after the last program block run after the program. Returns { ok, log, notes }.
 */
async function runPage(plan, dir, packages) {
  const env = stepEnv(dir);
  const log = [];
  const notes = [];
  // Install lines are checked, not run, so where they stand does not matter: check them first.
  const stepsAt = (i) => plan.steps.filter((s) => s.at === i && s.kind !== "install");
  const runAll = async (list) => {
    for (const step of list) {
      const failure = await runStep(step, plan, dir, env, packages, log, notes);
      if (failure) return failure;
    }
    return null;
  };
  const installs = await runAll(plan.steps.filter((s) => s.kind === "install"));
  if (installs) return { ok: false, log: [...log, installs], notes };
  if (!plan.js) {
    const failure = await runAll(plan.steps.filter((s) => s.kind !== "install"));
    return { ok: !failure, log: failure ? [...log, failure] : log, notes };
  }
  const first = plan.program[0];
  const timeoutMs = Number(plan.page.frontMatter["doctest-timeout"] ?? 120) * 1000;
  let failure = null;
  let out = "";
  const flush = () => {
    if (out.trim()) log.push(`${first.file}:${first.line} (program):\n${indent(mapOutput(out, plan))}`);
    out = "";
  };
  const code = await new Promise((done) => {
    const child = spawn(process.execPath, ["--enable-source-maps", plan.js], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe", "ipc"] });
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => {
      out += `\n[doctest] timed out after ${timeoutMs} ms\n`;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("message", async (m) => {
      flush();
      failure = await runAll(stepsAt(m.doctestPause));
      if (failure) child.kill("SIGKILL");
      else child.send("go");
    });
    child.on("close", (c, signal) => {
      clearTimeout(timer);
      done(c ?? (signal ? 128 : 1));
    });
  });
  const programOut = out;
  flush();
  if (failure) return { ok: false, log: [...log, failure], notes };
  if (code !== 0) return { ok: false, log: [...log, `${first.file}:${first.line}: the page's program failed (exit ${code}):\n${mapOutput(programOut, plan)}`], notes };
  failure = await runAll(stepsAt(plan.program.length));
  return { ok: !failure, log: failure ? [...log, failure] : log, notes };
}

function resolvable(name) {
  try {
    createRequire(join(ROOT, "package.json")).resolve(`${name}/package.json`);
    return true;
  } catch {
    return existsSync(join(ROOT, "node_modules", name, "package.json"));
  }
}

function indent(text) {
  return text
    .trimEnd()
    .split("\n")
    .map((l) => `    ${l}`)
    .join("\n");
}

/** Checks the requirement a page declares in its front matter (`doctest-requires: webgpu`). */
async function requirementMissing(page, dir) {
  const need = page.frontMatter["doctest-requires"];
  if (!need) return null;
  if (need !== "webgpu") return `unknown doctest-requires "${need}"`;
  const probe = `import { setupNodeWebGpu } from "@savepoint/backend-webgpu/node"; await setupNodeWebGpu();`;
  writeFileSync(join(dir, "probe-webgpu.mjs"), probe);
  const r = await execute(process.execPath, ["probe-webgpu.mjs"], { cwd: dir, env: stepEnv(dir), timeoutMs: 60_000 });
  return r.code === 0 ? null : `no WebGPU adapter in Node: ${r.out.trim().split("\n").find((l) => l.includes("[savepoint]")) ?? r.out.trim()}`;
}

/**
 * Plans, type-checks and runs `files` (markdown pages) in folders under `base`, whose
 * node_modules must resolve our packages. Returns the report and whether everything passed.
 */
export async function runDoctests(files, { base, concurrency = 2, write = (s) => process.stdout.write(s) } = {}) {
  const started = Date.now();
  const packages = workspacePackages();
  const plans = files.map((f) => planPage(readPage(f)));
  const failures = [];
  const warnings = [];
  for (const p of plans) failures.push(...p.problems);

  // Pending blocks whose package or export now exists must become runnable.
  for (const p of plans) {
    for (const s of p.skipped) {
      if (s.pending && (await pendingAvailable(s.pending))) {
        const msg = `${s.where}: ${s.pending} exists now; make this block runnable (drop pending=)`;
        (CI ? failures : warnings).push(msg);
      }
    }
  }

  const dirs = new Map();
  const checks = [];
  for (const p of plans) {
    const dir = join(base, p.rel.replace(/^docs\//, "").replace(/\.md$/, "").replace(/[/\\]/g, "__"));
    dirs.set(p, dir);
    try {
      checks.push(...materialize(p, dir));
    } catch (err) {
      failures.push(`${p.rel}: ${err.message}`);
    }
  }
  const t0 = Date.now();
  const typeErrors = typecheck(checks);
  write(`type-checked ${checks.length} files in ${((Date.now() - t0) / 1000).toFixed(1)}s\n`);
  for (const e of typeErrors) failures.push(typeof e === "string" ? e : e.text);
  const badPages = new Set(typeErrors.map((e) => (typeof e === "string" ? "" : e.file)));

  const queue = plans.filter((p) => (p.program.length > 0 || p.steps.length > 0) && !badPages.has(p.rel) && p.problems.length === 0);
  const results = new Map();
  await Promise.all(
    Array.from({ length: Math.max(1, concurrency) }, async () => {
      for (let p = queue.shift(); p; p = queue.shift()) {
        const t = Date.now();
        const dir = dirs.get(p);
        const missing = p.program.length > 0 ? await requirementMissing(p.page, dir) : null;
        if (missing) {
          if (CI) results.set(p, { ok: false, log: [`${p.rel}: ${missing} (required under CI)`], notes: [], ms: Date.now() - t });
          else results.set(p, { ok: true, skipped: missing, log: [], notes: [], ms: Date.now() - t });
          continue;
        }
        const r = await runPage(p, dir, packages);
        results.set(p, { ...r, ms: Date.now() - t });
      }
    }),
  );

  for (const p of plans) {
    const r = results.get(p);
    const kinds = [...p.program.map(() => ({ kind: "ts" })), ...p.files.map(() => ({ kind: "file" })), ...p.steps];
    const counts = Object.entries(kinds.reduce((m, s) => ({ ...m, [s.kind]: (m[s.kind] ?? 0) + 1 }), {}))
      .map(([k, v]) => `${v} ${k}`)
      .join(", ");
    const mark = !r ? (kinds.length === 0 ? "-" : "✗") : r.skipped ? "○" : r.ok ? "✓" : "✗";
    write(`${mark} ${p.rel}  ${counts || "no code"}${r ? `  ${(r.ms / 1000).toFixed(1)}s` : ""}${r?.skipped ? `  NOT RUN: ${r.skipped}` : ""}\n`);
    for (const s of p.skipped) write(`    skipped ${s.where}: ${s.reason}\n`);
    if (r?.skipped) warnings.push(`${p.rel}: not run: ${r.skipped}`);
    if (r) warnings.push(...r.notes);
    if (r && !r.ok) failures.push(...r.log.slice(-1));
    if (process.env.DOCTEST_VERBOSE && r) for (const l of r.log) write(`${indent(l)}\n`);
  }
  for (const w of warnings) write(`warning: ${w}\n`);
  for (const f of failures) write(`FAIL ${f}\n`);
  write(`${failures.length === 0 ? "doc tests passed" : `${failures.length} doc test failure(s)`} in ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
  return { ok: failures.length === 0, failures, warnings };
}

/** A scratch folder outside the repository whose node_modules is the workspace's. */
export function scratchProject(prefix = "savepoint-doctest-") {
  const base = mkdtempSync(join(tmpdir(), prefix));
  symlinkSync(join(ROOT, "node_modules"), join(base, "node_modules"), "dir");
  writeFileSync(join(base, "package.json"), `${JSON.stringify({ name: "doctest", private: true, type: "module" }, null, 2)}\n`);
  return base;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const files = args.length > 0 ? args.map((a) => resolve(a)) : docPages();
  const base = scratchProject();
  const { ok } = await runDoctests(files, { base });
  if (ok && !process.env.DOCTEST_KEEP) rmSync(base, { recursive: true, force: true });
  else process.stdout.write(`files kept in ${base}\n`);
  process.exitCode = ok ? 0 : 1;
}
