#!/usr/bin/env node
// Builds the savepoint_cuda Node-API addon with node-gyp against the CUDA toolkit at CUDA_HOME
// (or CUDA_PATH, or /usr/local/cuda).
//
//   node scripts/build-addon.mjs             build if sources changed; exit 1 on failure
//   node scripts/build-addon.mjs --force     rebuild even if up to date
//   node scripts/build-addon.mjs --tolerant  never fail (npm install / npm run build): a missing
//                                            toolkit or a failed build is reported and recorded
//   node scripts/build-addon.mjs --dry-run   print what would be done, build nothing
//
// The outcome is recorded in build/savepoint-build.json, which the package reads to explain why
// the backend is unavailable.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = new Set(process.argv.slice(2));
for (const a of args) {
  if (!["--force", "--tolerant", "--dry-run"].includes(a)) {
    console.error(`build-addon: unknown option ${a} (use --force, --tolerant, --dry-run)`);
    process.exit(2);
  }
}
const tolerant = args.has("--tolerant");
const force = args.has("--force");
const dryRun = args.has("--dry-run");

const ADDON = join(root, "build", "Release", "savepoint_cuda.node");
const STATUS = join(root, "build", "savepoint-build.json");
const LOG = join(root, "build", "addon-build.log");
const REBUILD = "npm run build:addon -w @savepoint/backend-cuda (in the savepoint repository) or `npm rebuild @savepoint/backend-cuda --foreground-scripts` (where it is installed)";

function say(line) {
  console.log(`[savepoint] backend-cuda: ${line}`);
}

function record(status) {
  if (dryRun) return;
  mkdirSync(dirname(STATUS), { recursive: true });
  writeFileSync(STATUS, `${JSON.stringify({ ...status, node: process.version, at: new Date().toISOString() }, null, 2)}\n`);
}

function finish(ok, reason) {
  if (ok) process.exit(0);
  say(`${reason}`);
  say(`the addon was not built; the CUDA backend will report itself unavailable. Fix the above, then run: ${REBUILD}`);
  process.exit(tolerant ? 0 : 1);
}

/** The toolkit folder and its library folder, or the reason there is none. */
function findToolkit() {
  // An explicit CUDA_HOME (or CUDA_PATH) is the only place looked at: silently building against
  // another toolkit than the one asked for would be worse than failing.
  const candidates = [process.env.CUDA_HOME || process.env.CUDA_PATH || "/usr/local/cuda"];
  const tried = [];
  for (const home of candidates) {
    const header = join(home, "include", "cuda_runtime_api.h");
    if (!existsSync(header)) {
      tried.push(`${home} (no include/cuda_runtime_api.h)`);
      continue;
    }
    const libdirs = [join(home, "lib64"), join(home, "lib")];
    const targets = join(home, "targets");
    if (existsSync(targets)) for (const t of readdirSync(targets)) libdirs.push(join(targets, t, "lib"));
    const libdir = libdirs.find((d) => existsSync(join(d, "libcudart_static.a")));
    if (!libdir) {
      tried.push(`${home} (no libcudart_static.a in ${libdirs.join(", ")})`);
      continue;
    }
    return { home, libdir };
  }
  return { reason: `no CUDA toolkit found: looked at ${tried.join("; ")}. Install the CUDA toolkit or set CUDA_HOME to its folder` };
}

/** node-gyp as npm runs it: npm passes its own copy in npm_config_node_gyp to lifecycle scripts. */
function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(dirname(process.execPath), "..", "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js"),
  ];
  for (const c of candidates) if (c && existsSync(c)) return c;
  try {
    return createRequire(join(root, "package.json")).resolve("node-gyp/bin/node-gyp.js");
  } catch {
    return undefined;
  }
}

/** Node's headers: npm's `nodedir` setting, else the headers installed beside this node binary. */
function findNodeDir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const prefix = resolve(dirname(process.execPath), "..");
  return existsSync(join(prefix, "include", "node", "node_api.h")) ? prefix : undefined;
}

/** What the build depends on; an unchanged stamp means the existing addon is current. */
function stampOf(toolkit) {
  const h = createHash("sha256");
  const files = ["binding.gyp", ...readdirSync(join(root, "native")).sort().map((f) => join("native", f))];
  for (const f of files) h.update(f).update(readFileSync(join(root, f)));
  const cudart = join(toolkit.libdir, "libcudart_static.a");
  h.update(`${process.version} ${process.arch} ${toolkit.home} ${toolkit.libdir} ${statSync(cudart).mtimeMs}`);
  return h.digest("hex");
}

const toolkit = findToolkit();
if (!toolkit.home) {
  record({ ok: false, reason: toolkit.reason });
  finish(false, toolkit.reason);
}

let addonApi;
try {
  addonApi = createRequire(join(root, "package.json")).resolve("node-addon-api");
} catch {
  const reason = "the node-addon-api headers are not installed (run npm install in the savepoint repository)";
  record({ ok: false, reason });
  finish(false, reason);
}

const stamp = stampOf(toolkit);
if (!force && existsSync(ADDON) && existsSync(STATUS)) {
  try {
    const previous = JSON.parse(readFileSync(STATUS, "utf8"));
    if (previous.ok && previous.stamp === stamp) {
      say(`addon is up to date (${ADDON})`);
      process.exit(0);
    }
  } catch {
    // unreadable status: rebuild
  }
}

const nodeGyp = findNodeGyp();
if (!nodeGyp) {
  const reason = "node-gyp was not found (npm ships it; run this script through npm, or install node-gyp)";
  record({ ok: false, reason });
  finish(false, reason);
}
const nodeDir = findNodeDir();
const gypArgs = [nodeGyp, "rebuild", "--jobs=max", ...(nodeDir ? [`--nodedir=${nodeDir}`] : [])];
const env = { ...process.env, CUDA_HOME: toolkit.home, SAVEPOINT_CUDA_LIBDIR: toolkit.libdir };

if (dryRun) {
  say(`would run: CUDA_HOME=${toolkit.home} SAVEPOINT_CUDA_LIBDIR=${toolkit.libdir} ${process.execPath} ${gypArgs.join(" ")}`);
  say(`(node-addon-api at ${dirname(addonApi)}; output ${ADDON})`);
  process.exit(0);
}

say(`building the addon against ${toolkit.home} (static CUDA runtime from ${toolkit.libdir})...`);
const started = performance.now();
const run = spawnSync(process.execPath, gypArgs, { cwd: root, env, encoding: "utf8", maxBuffer: 64 << 20 });
const seconds = Math.round((performance.now() - started) / 100) / 10;
const output = `${run.stdout ?? ""}${run.stderr ?? ""}${run.error ? String(run.error) : ""}`;
mkdirSync(dirname(LOG), { recursive: true });
writeFileSync(LOG, output);

if (run.status !== 0 || !existsSync(ADDON)) {
  const firstError = output.split("\n").find((l) => /error/i.test(l) && !/^gyp ERR! (stack|System|command|cwd|node|not ok)/.test(l))?.trim();
  const reason = `building the addon failed after ${seconds}s (${firstError ?? `node-gyp exited with ${run.status}`}); full log: ${LOG}`;
  console.error(output.split("\n").slice(-25).join("\n"));
  record({ ok: false, reason, cudaHome: toolkit.home });
  finish(false, reason);
}

record({ ok: true, stamp, cudaHome: toolkit.home, seconds });
say(`built ${ADDON} in ${seconds}s`);
