// Sharded (FSDP) save and load with N ranks, each a process started by savepoint's launcher (as
// `savepoint run -n N` does). The figure is the slowest rank's time from a common barrier.
import { readdirSync, rmSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { args, awaitQuiet, dropCaches, prewarm, report, syncAll } from "../lib/measure.mjs";

const a = args();
const { launch } = await import(process.env.BENCH_CORE ?? "@savepoint/core");
const here = dirname(fileURLToPath(import.meta.url));

const folderBytes = (dir) => readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);

if (a.mode === "save") rmSync(a.path, { recursive: true, force: true });
if (a.mode === "load") {
  if (a.cold) dropCaches();
  else for (const f of readdirSync(a.path)) prewarm(join(a.path, f));
}
const quiet = a.timed === false ? undefined : await awaitQuiet();
if (a.mode === "save") syncAll();
const h = await launch({ nproc: a.world, script: join(here, "sharded-rank.mjs"), nodeArgs: ["--expose-gc", ...(process.env.BENCH_NODE_ARGS ?? "").split(" ").filter(Boolean)], args: [JSON.stringify(a)], stdio: "pipe", log: () => {} });
const outs = h.processes.map(() => "");
let err = "";
h.processes.forEach((p, i) => {
  p.stdout?.on("data", (d) => (outs[i] += d));
  p.stderr?.on("data", (d) => (err += d));
});
const done = await h.done;
const ranks = outs.map((o) => o.split("\n").reverse().find((l) => l.startsWith("RESULT ")));
if (done.exitCode !== 0 || ranks.some((r) => !r)) {
  console.error(err.trim().split("\n").slice(-5).join("\n"));
  process.exit(1);
}
if (process.env.BENCH_VERBOSE) process.stderr.write(err);
const results = ranks.map((r) => JSON.parse(r.slice(7)));
const bytes = folderBytes(a.path);
report({ seconds: Math.max(...results.map((r) => r.seconds)), bytes, stateBytes: results[0].stateBytes, correct: results.every((r) => r.correct), ranks: results.map((r) => +r.seconds.toFixed(3)), quiet });
rmSync(`${a.path}.warmup`, { recursive: true, force: true });
