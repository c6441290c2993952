#!/usr/bin/env node
// savepoint's benchmark suite: every figure is a ratio against the same work done on this machine
// by Node's raw file I/O or by real PyTorch, measured side by side in one run.
//
//   npm run bench                 # full suite (~10-15 min), writes bench/results.json + bench/ratios.svg
//   npm run bench -- --quick      # smaller states, one round (~3 min)
//   node bench/run.mjs --only=save,load_warm   # a subset, written to bench/.work/results-only.json
//   (names: save, load_warm, load_cold, partial, memory, async, scaling, sharded)
//
// Each measurement runs in its own child process (node --expose-gc, or python3 for PyTorch),
// repeated in rounds whose order alternates; the best (fastest) of the rounds is the figure, since
// on a shared machine interference only ever adds time. Files go to bench/.work (gitignored) and are
// deleted afterwards.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, freemem, release, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { renderChart } from "./lib/chart.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = dirname(here);
const work = join(here, ".work");
const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const only = argv.find((x) => x.startsWith("--only="))?.slice(7).split(",");
const PYTHON = process.env.SAVEPOINT_PYTHON ?? "/usr/bin/python3";
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

const cfg = quick
  ? { scale: 0.25, rounds: 2, shardedRounds: 1, partialScale: 0.1, memoryScale: 0.5, asyncScale: 0.25, asyncRounds: 1, scaling: [0.125, 0.25, 0.5], scalingRounds: 1 }
  : { scale: 1, rounds: 5, shardedRounds: 3, partialScale: 1 / 3, memoryScale: 2, asyncScale: 1, asyncRounds: 3, scaling: [0.25, 0.5, 1, 2], scalingRounds: 2 };

mkdirSync(work, { recursive: true });
const started = Date.now();
const log = (...m) => console.log(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s]`, ...m);

/** Runs one contender process; resolves to its RESULT object (or { error }). */
function runChild(kind, script, a, timeoutMs = 600_000) {
  const cmd = kind === "python" ? PYTHON : process.execPath;
  const cmdArgs = kind === "python" ? [join(here, "contenders", script), JSON.stringify(a)] : ["--expose-gc", join(here, "contenders", script), JSON.stringify(a)];
  return new Promise((resolve) => {
    const child = spawn(cmd, cmdArgs, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      const line = out.split("\n").reverse().find((l) => l.startsWith("RESULT "));
      if (code === 0 && line) resolve(JSON.parse(line.slice(7)));
      else resolve({ error: `${script} ${a.mode} exited ${code}: ${(err.trim().split("\n").slice(-3).join(" | ") || out.slice(-300)).slice(0, 600)}` });
    });
  });
}

const contenders = {
  savepoint: (a) => runChild("node", "savepoint.mjs", a),
  raw: (a) => runChild("node", "raw.mjs", a),
  sharded: (a) => runChild("node", "sharded.mjs", a),
  torch: (a) => runChild("python", "torch_contender.py", a),
};

const stats = (samples) => {
  const ok = samples.filter((s) => !s.error && Number.isFinite(s.seconds));
  if (ok.length === 0) return { error: samples.find((s) => s.error)?.error ?? "no samples" };
  const secs = ok.map((s) => s.seconds).sort((x, y) => x - y);
  const best = ok.find((s) => s.seconds === secs[0]);
  return {
    best: secs[0],
    median: secs[Math.floor((secs.length - 1) / 2)],
    bytes: best.bytes,
    throughputMiBs: best.bytes / secs[0] / MiB,
    samples: samples.map((s) => (s.error ? { error: s.error } : { seconds: +s.seconds.toFixed(4), cpu: +(s.cpu ?? NaN).toFixed(3), ...(s.cold !== undefined ? { cold: s.cold } : {}), ...(s.correct !== undefined ? { correct: s.correct } : {}), quiet: s.quiet })),
  };
};

/** Runs the named contenders in `rounds` alternating orders; returns stats per contender. */
async function compare(name, entries, rounds) {
  const samples = Object.fromEntries(entries.map((e) => [e.label, []]));
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? entries : [...entries].reverse();
    for (const e of order) {
      const res = await contenders[e.who](e.args);
      samples[e.label].push(res);
      log(`${name} round ${r + 1}: ${e.label} ${res.error ? `ERROR ${res.error}` : `${res.seconds.toFixed(3)} s${res.quiet ? ` (busy ${res.quiet.busy})` : ""}${res.correct === false ? " WRONG VALUES" : ""}`}`);
    }
  }
  return Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, stats(v)]));
}

/** Throughput of a over b (bytes per second); > 1 means a is faster. */
const ratio = (a, b) => (a?.best && b?.best ? a.bytes / a.best / (b.bytes / b.best) : null);
const round3 = (x) => (x === null || x === undefined || Number.isNaN(x) ? null : +x.toFixed(3));

function machine() {
  const sh = (c, a) => {
    try {
      return execFileSync(c, a, { encoding: "utf8" }).trim();
    } catch {
      return null;
    }
  };
  let torch = null;
  try {
    torch = execFileSync(PYTHON, ["-c", "import torch, numpy; print(torch.__version__)"], { encoding: "utf8" }).trim();
  } catch {
    /* no torch */
  }
  let dropCaches = false;
  try {
    execFileSync("sync");
    writeFileSync("/proc/sys/vm/drop_caches", "3");
    dropCaches = true;
  } catch {
    /* refused: cold reads cannot be measured */
  }
  const fs = sh("df", ["-T", work])?.split("\n")[1]?.split(/\s+/);
  return {
    cpu: `${cpus().length} × ${cpus()[0]?.model ?? "?"}`,
    memoryGiB: +(totalmem() / GiB).toFixed(1),
    freeMemoryGiB: +(freemem() / GiB).toFixed(1),
    kernel: release(),
    node: process.version,
    torch,
    python: PYTHON,
    disk: fs ? `${fs[1]} on ${fs[0]}` : null,
    dropCaches,
    loadAverageAtStart: sh("cat", ["/proc/loadavg"])?.split(" ").slice(0, 3).join(" "),
  };
}

const want = (k) => !only || only.includes(k);
const results = {
  date: new Date().toISOString(),
  command: `npm run bench${quick ? " -- --quick" : ""}`,
  quick,
  config: cfg,
  machine: machine(),
  method:
    "Each contender runs in its own process, once per round; rounds alternate the order; the figure is the best of the rounds (median also recorded). " +
    "Writers write to bench/.work on the same disk and fsync before the clock stops. Readers read the same checkpoint file. " +
    "Before each timed region a contender waits (up to 20 s) for the shared machine to be mostly idle; the CPU busy fraction seen is recorded per sample.",
  comparisons: {},
  targets: [],
};
const haveTorch = results.machine.torch !== null;
if (!haveTorch) log(`no PyTorch at ${PYTHON}: torch comparisons are skipped`);
log("machine", JSON.stringify(results.machine));

const ref = join(work, "reference.ckpt");
const out = join(work, "out.ckpt");
const cleanup = () => {
  for (const p of [ref, `${ref}.json`, out]) rmSync(p, { force: true });
};
process.on("exit", cleanup);
process.on("SIGINT", () => process.exit(130));

const target = (id, label, value, op, goal, extra = {}) => {
  const met = value === null ? null : op === ">=" ? value >= goal : value <= goal;
  results.targets.push({ id, label, value: round3(value), target: `${op} ${goal}`, met, ...extra });
};

// ---- the reference checkpoint ------------------------------------------------------------------
const needRef = ["save", "load_warm", "load_cold"].some(want);
if (needRef) {
  const r = await contenders.savepoint({ mode: "reference", scale: cfg.scale, path: ref });
  if (r.error) throw new Error(r.error);
  results.state = { stateBytes: r.stateBytes, fileBytes: r.fileBytes, modelBytes: r.modelBytes, description: "tfjs-layers model (48 kernels of 16 MiB, 1,000 dense layers of 64 units = 2,000 small tensors, a 512 KiB kernel) + Adam state dict (exp_avg/exp_avg_sq for the small layers and 7 big kernels, step per parameter), float32, scaled by `scale`" };
  log(`reference checkpoint: ${(r.fileBytes / GiB).toFixed(3)} GiB file, ${(r.stateBytes / GiB).toFixed(3)} GiB of tensors`);
}

// ---- save ----------------------------------------------------------------------------------------
if (want("save")) {
  const entries = [
    { label: "savepoint", who: "savepoint", args: { mode: "save", scale: cfg.scale, path: out } },
    { label: "raw write", who: "raw", args: { mode: "write", source: ref, path: out } },
    { label: "raw write + early writeback", who: "raw", args: { mode: "write", source: ref, path: out, writeback: true } },
  ];
  if (haveTorch) entries.push({ label: "torch.save", who: "torch", args: { mode: "save", source: ref, path: out } });
  const c = await compare("save", entries, cfg.rounds);
  results.comparisons.save = { what: `save ${(results.state.stateBytes / GiB).toFixed(2)} GiB of float32 state to local disk, fsync included`, contenders: c, ratios: { vsRaw: round3(ratio(c.savepoint, c["raw write"])), vsRawEarlyWriteback: round3(ratio(c.savepoint, c["raw write + early writeback"])), vsTorch: round3(ratio(c.savepoint, c["torch.save"])) } };
  target("save-raw", "save throughput vs raw write", ratio(c.savepoint, c["raw write"]), ">=", 0.85);
  if (haveTorch) target("save-torch", "save throughput vs torch.save", ratio(c.savepoint, c["torch.save"]), ">=", 1.0);
}

// ---- load ----------------------------------------------------------------------------------------
for (const cold of [false, true]) {
  const key = cold ? "load_cold" : "load_warm";
  if (!want(key)) continue;
  if (cold && !results.machine.dropCaches) {
    results.comparisons[key] = { skipped: "echo 3 > /proc/sys/vm/drop_caches was refused here; cold reads not measured" };
    continue;
  }
  const entries = [
    { label: "savepoint", who: "savepoint", args: { mode: "load", scale: cfg.scale, path: ref, cold } },
    { label: "savepoint verify:false", who: "savepoint", args: { mode: "load", scale: cfg.scale, path: ref, cold, verify: false } },
    { label: "raw read", who: "raw", args: { mode: "read", source: ref, cold } },
  ];
  if (haveTorch) entries.push({ label: "torch.load", who: "torch", args: { mode: "load", source: ref, cold } });
  if (haveTorch && !cold) entries.push({ label: "torch.load + copy_", who: "torch", args: { mode: "load_copy", source: ref, cold } });
  const c = await compare(key, entries, cfg.rounds);
  const wrong = Object.values(c).some((s) => s.samples?.some((x) => x.correct === false));
  results.comparisons[key] = {
    what: `load the same state into existing tfjs variables (${cold ? "cold page cache: dropped before each run" : "warm page cache"}); savepoint verifies CRCs unless noted`,
    contenders: c,
    ratios: {
      vsRaw: round3(ratio(c.savepoint, c["raw read"])),
      vsRawNoVerify: round3(ratio(c["savepoint verify:false"], c["raw read"])),
      vsTorchLoad: round3(ratio(c.savepoint, c["torch.load"])),
      vsTorchLoadCopy: round3(ratio(c.savepoint, c["torch.load + copy_"])),
      verifyCost: round3(c.savepoint?.best && c["savepoint verify:false"]?.best ? c.savepoint.best / c["savepoint verify:false"].best : null),
    },
    valuesCorrect: !wrong,
  };
  const tag = cold ? "cold" : "warm";
  target(`load-raw-${tag}`, `load throughput vs raw read (${tag})`, ratio(c.savepoint, c["raw read"]), ">=", 0.85, { withoutVerify: round3(ratio(c["savepoint verify:false"], c["raw read"])) });
  if (haveTorch) target(`load-torch-${tag}`, `load throughput vs torch.load (${tag})`, ratio(c.savepoint, c["torch.load"]), ">=", 1.0, { withoutVerify: round3(ratio(c["savepoint verify:false"], c["torch.load"])) });
}
rmSync(ref, { force: true });
rmSync(`${ref}.json`, { force: true });

// ---- partial load --------------------------------------------------------------------------------
if (want("partial")) {
  const pref = join(work, "partial.ckpt");
  const r = await contenders.savepoint({ mode: "reference", scale: cfg.partialScale, optimizerAll: true, path: pref });
  const p = r.error ? r : await contenders.savepoint({ mode: "partial", scale: cfg.partialScale, path: pref });
  rmSync(pref, { force: true });
  rmSync(`${pref}.json`, { force: true });
  if (p.error) results.comparisons.partial = { error: p.error };
  else {
    results.comparisons.partial = {
      what: "load only `model` from a checkpoint whose optimizer state is twice the model's size",
      modelBytes: p.modelBytes,
      fileBytes: p.fileBytes,
      bytesRequested: p.bytesRead,
      syscallBytes: p.syscallBytes,
      ratio: round3(p.bytesRead / p.modelBytes),
      syscallRatio: round3(p.syscallBytes / p.modelBytes),
      seconds: round3(p.seconds),
      valuesCorrect: p.correct,
    };
    target("partial", "partial load: bytes read / model bytes", p.bytesRead / p.modelBytes, "<=", 1.05, { syscallRatio: round3(p.syscallBytes / p.modelBytes) });
    log(`partial: ${(p.bytesRead / MiB).toFixed(1)} MiB requested (${(p.syscallBytes / MiB).toFixed(1)} MiB by syscalls) for a ${(p.modelBytes / MiB).toFixed(1)} MiB model in a ${(p.fileBytes / MiB).toFixed(1)} MiB file`);
  }
}

// ---- peak memory ---------------------------------------------------------------------------------
if (want("memory")) {
  const m = await contenders.savepoint({ mode: "memory", scale: cfg.memoryScale, path: out });
  if (m.error) results.comparisons.memory = { error: m.error };
  else {
    results.comparisons.memory = {
      what: "peak RSS (VmHWM) while saving and while loading, minus the process before the state existed and minus the state itself",
      stateBytes: m.stateBytes,
      processBeforeState: m.base,
      saveOverheadMiB: +(m.saveOverhead / MiB).toFixed(1),
      loadOverheadMiB: +(m.loadOverhead / MiB).toFixed(1),
      raw: m,
    };
    target("memory-save", `peak RSS over state while saving ${(m.stateBytes / GiB).toFixed(1)} GiB (MiB)`, m.saveOverhead / MiB, "<=", 256);
    target("memory-load", `peak RSS over state while loading ${(m.stateBytes / GiB).toFixed(1)} GiB (MiB)`, m.loadOverhead / MiB, "<=", 256);
    log(`memory: save +${(m.saveOverhead / MiB).toFixed(0)} MiB, load +${(m.loadOverhead / MiB).toFixed(0)} MiB over a ${(m.stateBytes / GiB).toFixed(2)} GiB state`);
    // The same for the model alone: what loading costs without the optimizer adapter's new slots.
    const mm = await contenders.savepoint({ mode: "memory", scale: cfg.memoryScale, path: out, optimizer: false });
    if (!mm.error) {
      results.comparisons.memory.modelOnly = { stateBytes: mm.stateBytes, saveOverheadMiB: +(mm.saveOverhead / MiB).toFixed(1), loadOverheadMiB: +(mm.loadOverhead / MiB).toFixed(1) };
      log(`memory, model only: save +${(mm.saveOverhead / MiB).toFixed(0)} MiB, load +${(mm.loadOverhead / MiB).toFixed(0)} MiB over ${(mm.stateBytes / GiB).toFixed(2)} GiB`);
    }
  }
}

// ---- async save ----------------------------------------------------------------------------------
if (want("async")) {
  const runs = [];
  for (let r = 0; r < cfg.asyncRounds; r++) {
    const res = await contenders.savepoint({ mode: "async", scale: cfg.asyncScale, path: out });
    runs.push(res);
    log(`async round ${r + 1}: ${res.error ? `ERROR ${res.error}` : `sync ${res.sync.toFixed(3)} s, blocked ${res.blockedFirst.toFixed(3)} s (first), ${res.blockedReused.toFixed(3)} s (buffers reused)`}`);
  }
  const ok = runs.filter((r) => !r.error);
  if (ok.length === 0) results.comparisons.async = { error: runs[0]?.error };
  else {
    // Per round, blocked time over that round's synchronous save; the best round is reported.
    const reused = Math.min(...ok.map((r) => r.blockedReused / r.sync));
    const first = Math.min(...ok.map((r) => r.blockedFirst / r.sync));
    results.comparisons.async = { what: "time the caller is blocked by save(..., { async: true }) over a synchronous save of the same state", blockedOverSyncReused: round3(reused), blockedOverSyncFirst: round3(first), runs };
    target("async", "async save: blocked time / synchronous save (staging buffers reused)", reused, "<=", 0.15, { firstSave: round3(first) });
  }
}

// ---- scaling -------------------------------------------------------------------------------------
if (want("scaling")) {
  // Per size: savepoint to disk, savepoint into a sink that drops the bytes (its own work, no I/O),
  // and Node writing as many bytes raw: the control for what the machine's page cache and disk do
  // as files grow.
  const rows = [];
  for (const scale of cfg.scaling) {
    const samples = { disk: [], discard: [], raw: [] };
    for (let r = 0; r < cfg.scalingRounds; r++) {
      const disk = await contenders.savepoint({ mode: "save", scale, path: out });
      samples.disk.push(disk);
      samples.discard.push(await contenders.savepoint({ mode: "save", scale, path: out, discard: true }));
      if (!disk.error) samples.raw.push(await contenders.raw({ mode: "write", bytes: disk.bytes, path: out }));
    }
    const bytes = samples.disk.find((x) => !x.error)?.stateBytes;
    const gib = bytes ? bytes / GiB : null;
    const row = { scale, stateGiB: gib ? +gib.toFixed(3) : null };
    for (const [k, v] of Object.entries(samples)) {
      const st = stats(v);
      row[k] = { seconds: round3(st.best), secondsPerGiB: gib && st.best ? round3(st.best / gib) : null, samples: st.samples ?? st.error };
    }
    row.diskOverRaw = row.disk.seconds && row.raw.seconds ? round3(row.disk.seconds / row.raw.seconds) : null;
    rows.push(row);
    log(`scaling ${scale}: savepoint ${row.disk.seconds} s, savepoint without I/O ${row.discard.seconds} s, raw write ${row.raw.seconds} s`);
  }
  // Worse than linear shows as seconds per GiB growing with size: the largest against the best of the others.
  const growth = (k) => {
    const per = rows.map((r) => r[k].secondsPerGiB).filter((x) => x !== null);
    return per.length >= 2 ? per[per.length - 1] / Math.min(...per.slice(0, -1)) : null;
  };
  results.comparisons.scaling = {
    what: "save time as the state grows (fsync included), with savepoint's own work (a sink that drops the bytes) and a raw write of as many bytes as controls",
    rows,
    growth: { savepoint: round3(growth("disk")), savepointWithoutIO: round3(growth("discard")), rawWrite: round3(growth("raw")) },
  };
  target("scaling", "scaling: savepoint's own work, s/GiB at the largest size / best of the others (1 = linear)", growth("discard"), "<=", 1.2, { withDisk: round3(growth("disk")), rawWriteSameBytes: round3(growth("raw")) });
}

// ---- sharded (FSDP) ------------------------------------------------------------------------------
if (want("sharded")) {
  // The model-only state (no optimizer: FSDP's slots need training steps to exist), saved by one
  // process to one file and by 2 ranks to a DCP folder; then loaded by 2 ranks from a folder saved
  // by 2 ranks and from one saved by 3 (rows split at other boundaries: every rank reads parts of
  // chunks). Throughput counts the state's tensor bytes, the same for both layouts.
  const same = join(work, "sharded-2");
  const other = join(work, "sharded-3");
  const s = { scale: cfg.scale, optimizer: false };
  const c = await compare("sharded save", [
    { label: "single file", who: "savepoint", args: { mode: "save", ...s, path: out } },
    { label: "2 ranks", who: "sharded", args: { mode: "save", world: 2, ...s, path: same } },
  ], cfg.shardedRounds);
  const refs = [await contenders.sharded({ mode: "save", world: 2, ...s, path: same, timed: false }), await contenders.sharded({ mode: "save", world: 3, ...s, path: other, timed: false })];
  const l = refs.some((r) => r.error) ? { error: refs.find((r) => r.error).error } : await compare("sharded load", [
    { label: "2 ranks from 2", who: "sharded", args: { mode: "load", world: 2, ...s, path: same } },
    { label: "2 ranks from 3", who: "sharded", args: { mode: "load", world: 2, ...s, path: other } },
  ], cfg.shardedRounds);
  for (const p of [same, other]) rmSync(p, { recursive: true, force: true });
  const throughput = (x) => (x?.best ? x.stateBytesPerSecond : null);
  for (const x of [c["single file"], c["2 ranks"]]) if (x?.best) x.stateBytesPerSecond = refs[0].stateBytes / x.best;
  const saveRatio = c["single file"]?.best && c["2 ranks"]?.best ? c["single file"].best / c["2 ranks"].best : null;
  const loadRatio = l["2 ranks from 2"]?.best && l["2 ranks from 3"]?.best ? l["2 ranks from 3"].best / l["2 ranks from 2"].best : null;
  const wrong = Object.values(l).some((x) => x.samples?.some((y) => y.correct === false));
  results.comparisons.sharded = {
    what: "FSDP: save throughput of 2 ranks (one DCP folder) over one process writing one file of the same model state; load time into 2 ranks from a folder saved by 3 over one saved by 2",
    stateBytes: refs[0].stateBytes ?? null,
    save: c,
    load: l,
    ratios: { saveThroughputVsSingleFile: round3(saveRatio), reshardLoadOverSameWorld: round3(loadRatio) },
    valuesCorrect: !wrong,
    throughputMiBs: { singleFile: round3(throughput(c["single file"]) / MiB), twoRanks: round3(throughput(c["2 ranks"]) / MiB) },
  };
  target("sharded-save", "sharded save (2 ranks) throughput vs single-file save", saveRatio, ">=", 1.0);
  target("sharded-reshard", "sharded load from another world size / same world size (time)", loadRatio, "<=", 1.25);
}

results.totalSeconds = Math.round((Date.now() - started) / 1000);
results.machine.loadAverageAtEnd = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

if (only) {
  // A subset is not the suite: it goes beside the latest full results instead of replacing them.
  writeFileSync(join(here, ".work", "results-only.json"), `${JSON.stringify(results, null, 2)}\n`);
  log(`wrote bench/.work/results-only.json in ${results.totalSeconds} s (a subset: bench/results.json is left as it was)`);
} else {
  writeFileSync(join(here, "results.json"), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(join(here, "ratios.svg"), renderChart(results));
  log(`wrote bench/results.json and bench/ratios.svg in ${results.totalSeconds} s`);
}
console.log("\n" + results.targets.map((t) => `${t.met === null ? "n/a " : t.met ? "MET " : "MISS"}  ${t.label}: ${t.value} (target ${t.target})`).join("\n"));
