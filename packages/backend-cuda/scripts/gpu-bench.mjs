#!/usr/bin/env node
// Benchmarks saving and loading device tensors with the CUDA backend against the machine's raw
// links: pinned cudaMemcpy (device <-> host) and plain file writes/reads (with fsync), measured
// here in the same process. Prints GB/s and ratios, checks the targets, writes JSON if asked.
//
//   node scripts/gpu-bench.mjs [--bytes 4GiB] [--tensors 16] [--dir DIR] [--chunk-bytes 8MiB]
//                              [--staging-buffers 4] [--staging-buffer-bytes 8MiB]
//                              [--json FILE] [--no-targets] [--warm-reads] [--dry-run] [--help]
//
// Targets: device->host staging >= 80% of raw pinned cudaMemcpy D2H; save >= 85% of the slower
// of raw D2H and raw disk write. Load is reported against the slower of raw H2D and raw disk read.
// Exit status: 0 all targets met (or --no-targets / --dry-run), 1 a target missed or no GPU, 2 bad usage.
import { closeSync, constants, existsSync, fsyncSync, mkdirSync, openSync, readSync, rmSync, statfsSync, statSync, writeFileSync, writeSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { crc32 } from "node:zlib";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const TARGET_STAGING = 0.8;
const TARGET_SAVE = 0.85;
const GiB = 2 ** 30;
const MiB = 2 ** 20;

const USAGE = `usage: node scripts/gpu-bench.mjs [--bytes 4GiB] [--tensors 16] [--dir DIR] [--chunk-bytes 8MiB]
       [--staging-buffers 4] [--staging-buffer-bytes 8MiB] [--json FILE] [--no-targets] [--warm-reads]
       [--dry-run] [--help]
  --warm-reads  do not drop the page cache before the read measurements (it needs root)`;

/** "4GiB", "512MiB", "8M", "1048576" -> bytes. */
function parseSize(text, name) {
  const m = /^(\d+(?:\.\d+)?)\s*(b|k|kib|m|mib|g|gib)?$/i.exec(String(text).trim());
  if (!m) throw new Error(`--${name}: expected a size like 4GiB, 512MiB or 1048576, got ${JSON.stringify(text)}`);
  const unit = { b: 1, k: 1024, kib: 1024, m: MiB, mib: MiB, g: GiB, gib: GiB }[(m[2] ?? "b").toLowerCase()];
  const bytes = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(bytes) || bytes < 1) throw new Error(`--${name}: ${text} is not a usable size`);
  return bytes;
}

function parseOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      bytes: { type: "string", default: "4GiB" },
      tensors: { type: "string", default: "16" },
      dir: { type: "string", default: process.env.SAVEPOINT_BENCH_DIR || join(tmpdir(), "savepoint-gpu-bench") },
      "chunk-bytes": { type: "string", default: "8MiB" },
      "staging-buffers": { type: "string", default: "4" },
      "staging-buffer-bytes": { type: "string", default: "8MiB" },
      json: { type: "string" },
      "no-targets": { type: "boolean", default: false },
      "warm-reads": { type: "boolean", default: false },
      "dry-run": { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  const tensors = Number(values.tensors);
  const stagingBuffers = Number(values["staging-buffers"]);
  if (!Number.isSafeInteger(tensors) || tensors < 1) throw new Error(`--tensors: expected a positive integer, got ${values.tensors}`);
  if (!Number.isSafeInteger(stagingBuffers) || stagingBuffers < 1) throw new Error(`--staging-buffers: expected a positive integer, got ${values["staging-buffers"]}`);
  const bytes = parseSize(values.bytes, "bytes");
  // Whole float32 elements per tensor.
  const tensorBytes = Math.floor(bytes / tensors / 4) * 4;
  if (tensorBytes < 4) throw new Error(`--bytes ${values.bytes} is too small for ${tensors} tensors`);
  return {
    help: values.help,
    dryRun: values["dry-run"],
    checkTargets: !values["no-targets"],
    dropCaches: !values["warm-reads"],
    tensors,
    tensorBytes,
    totalBytes: tensorBytes * tensors,
    dir: resolve(values.dir),
    chunkBytes: parseSize(values["chunk-bytes"], "chunk-bytes"),
    stagingBuffers,
    stagingBufferBytes: parseSize(values["staging-buffer-bytes"], "staging-buffer-bytes"),
    json: values.json ? resolve(values.json) : undefined,
  };
}

const gbps = (bytes, ms) => bytes / 1e9 / (ms / 1e3);
const fmt = (x) => (x === undefined ? "-" : x.toFixed(2));
const now = () => performance.now();

/** Best of `runs` timings of `fn` (ms). */
async function best(runs, fn) {
  let min = Infinity;
  for (let i = 0; i < runs; i++) {
    const t0 = now();
    await fn();
    min = Math.min(min, now() - t0);
  }
  return min;
}

/** Empties the page cache so reads come from the disk; false where that is not permitted. */
function dropCaches() {
  try {
    writeFileSync("/proc/sys/vm/drop_caches", "3\n");
    return true;
  } catch {
    return false;
  }
}

/** Raw sequential write of `total` bytes from `source` in `chunk`-byte writes, then fsync. */
function rawWrite(path, source, total, chunk) {
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o644);
  try {
    for (let off = 0; off < total; ) {
      const n = Math.min(chunk, total - off, source.byteLength);
      off += writeSync(fd, source, 0, n);
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Raw sequential read of a whole file in `chunk`-byte reads. */
function rawRead(path, into) {
  const fd = openSync(path, constants.O_RDONLY);
  let total = 0;
  try {
    for (;;) {
      const n = readSync(fd, into, 0, into.byteLength, null);
      if (n === 0) return total;
      total += n;
    }
  } finally {
    closeSync(fd);
  }
}

async function main() {
  let o;
  try {
    o = parseOptions(process.argv.slice(2));
  } catch (error) {
    console.error(`gpu-bench: ${error.message}\n${USAGE}`);
    process.exit(2);
  }
  if (o.help) {
    console.log(USAGE);
    return 0;
  }

  const { cudaStatus, deviceInfo, cudaBackend, CudaTensor } = await import(join(root, "dist", "index.js")).catch((error) => {
    console.error(`gpu-bench: cannot import ${join(root, "dist", "index.js")} (${error.message}); build first: npm run build -w @savepoint/backend-cuda`);
    process.exit(1);
  });
  const { Fabric, NodeFileIO } = await import("@savepoint/core");

  mkdirSync(o.dir, { recursive: true });
  const fsInfo = statfsSync(o.dir);
  const freeDisk = fsInfo.bavail * fsInfo.bsize;
  // The checkpoint, its temporary twin during the atomic rename, and the raw-write file (deleted before the save).
  const needDisk = o.totalBytes * 1.05 + 64 * MiB;
  const status = cudaStatus();
  console.log(`plan: ${o.tensors} float32 tensors x ${(o.tensorBytes / MiB).toFixed(1)} MiB = ${(o.totalBytes / GiB).toFixed(2)} GiB on cuda:0`);
  console.log(`      files in ${o.dir} (${(freeDisk / GiB).toFixed(1)} GiB free, ~${(needDisk / GiB).toFixed(1)} GiB needed)`);
  console.log(`      chunkBytes ${o.chunkBytes}, staging ${o.stagingBuffers} x ${o.stagingBufferBytes} bytes`);
  console.log(`      CUDA: ${status.available ? `available, ${status.deviceCount} device(s), runtime ${status.runtimeVersion}, driver ${status.driverVersion}` : status.reason}`);
  if (freeDisk < needDisk) {
    console.error(`gpu-bench: not enough free disk in ${o.dir}; pass --dir on a larger disk or a smaller --bytes`);
    return 1;
  }
  if (o.dryRun) {
    console.log("dry run: arguments, build output and disk checked; nothing measured");
    return 0;
  }
  if (!status.available) {
    console.error(`gpu-bench: CUDA is ${status.reason}`);
    return 1;
  }

  const info = deviceInfo(0);
  console.log(`device: ${info.name} (${info.pciBusId}, sm_${info.computeCapability}), ${(info.freeMemory / GiB).toFixed(1)} of ${(info.totalMemory / GiB).toFixed(1)} GiB free, ${info.asyncEngineCount} copy engines`);
  // The saved tensors, the load's targets, one scratch copy (atomic assign) and one for raw copies.
  if (info.freeMemory < 2 * o.totalBytes + 2 * o.tensorBytes + 512 * MiB) {
    console.error("gpu-bench: not enough free device memory for two sets of tensors plus scratch copies; pass a smaller --bytes");
    return 1;
  }
  const native = createRequire(import.meta.url)(status.addonPath);

  // The tensors: distinct contents per tensor, remembered by CRC for checking the load.
  const host = new Uint8Array(o.tensorBytes);
  for (let i = 0; i < host.length; i += 4) host[i] = (i >>> 12) & 0xff;
  // Top-level tensors: Fabric loads those in place (nested plain objects would be replaced).
  const tensors = {};
  const targets = {};
  const crcs = {};
  for (let k = 0; k < o.tensors; k++) {
    host.fill(k & 0xff, 0, Math.min(4096, host.length));
    tensors[`layer${k}.weight`] = CudaTensor.fromHost(host, "float32", [o.tensorBytes / 4]);
    targets[`layer${k}.weight`] = CudaTensor.empty("float32", [o.tensorBytes / 4]);
    crcs[`layer${k}.weight`] = crc32(host);
  }
  const list = Object.values(tensors);

  // Raw links: whole-tensor cudaMemcpy to/from one pinned buffer, best of 3.
  const pinned = new Uint8Array(native.hostAlloc(o.tensorBytes));
  const scratch = native.malloc(0, o.tensorBytes);
  native.copyToHostSync(0, list[0].address, 0, pinned); // warm-up
  const rawD2H = gbps(o.totalBytes, await best(3, () => list.forEach((t) => native.copyToHostSync(0, t.address, 0, pinned))));
  const rawH2D = gbps(o.totalBytes, await best(3, () => list.forEach(() => native.copyToDeviceSync(0, pinned, scratch, 0))));
  native.free(scratch);

  // The backend's device->host staging alone: every chunk pulled, nothing done with it.
  const cuda = cudaBackend({ stagingBuffers: o.stagingBuffers, stagingBufferBytes: o.stagingBufferBytes });
  const drain = async () => {
    for (const t of list) for await (const c of cuda.toSource(t).chunks(o.chunkBytes)) void c;
  };
  for await (const c of cuda.toSource(list[0]).chunks(o.chunkBytes)) void c; // allocates the pinned pool
  const staging = gbps(o.totalBytes, await best(3, drain));

  // Raw disk write of the same amount, with fsync; the better of the save's chunk size and 64 MiB writes.
  const rawPath = join(o.dir, "raw-write.bin");
  let rawWriteMs = Infinity;
  for (const chunk of [o.chunkBytes, 64 * MiB]) {
    const t0 = now();
    rawWrite(rawPath, pinned, o.totalBytes, chunk);
    rawWriteMs = Math.min(rawWriteMs, now() - t0);
    rmSync(rawPath, { force: true });
  }
  native.hostFree(pinned.buffer);
  const rawDisk = gbps(o.totalBytes, rawWriteMs);

  // The save: device -> pinned -> file, CRC on the fly, fsync and rename.
  const path = join(o.dir, "bench.ckpt");
  rmSync(path, { force: true });
  const fabric = new Fabric({ backend: cuda, io: new NodeFileIO(), chunkBytes: o.chunkBytes });
  let t0 = now();
  await fabric.save(path, tensors);
  const saveMs = now() - t0;
  const save = gbps(o.totalBytes, saveMs);
  const fileBytes = statSync(path).size;

  // Reads: from the disk where the page cache can be dropped (root), else from the cache.
  const readBuffer = new Uint8Array(Math.max(o.chunkBytes, 64 * MiB));
  const cold = o.dropCaches && dropCaches();
  t0 = now();
  rawRead(path, readBuffer);
  const rawDiskRead = gbps(fileBytes, now() - t0);
  if (cold) dropCaches();
  const addresses = Object.values(targets).map((t) => t.address);
  t0 = now();
  await fabric.load(path, targets);
  const loadMs = now() - t0;
  const load = gbps(o.totalBytes, loadMs);

  let verified = Object.values(targets).every((t, i) => t.address === addresses[i]);
  if (!verified) console.error("gpu-bench: the load replaced tensors instead of loading them in place");
  for (const [k, t] of Object.entries(targets)) {
    if (crc32(await t.toHost()) !== crcs[k]) {
      verified = false;
      console.error(`gpu-bench: ${k} differs after the load`);
    }
  }
  for (const t of [...list, ...Object.values(targets)]) t.dispose();
  cuda.releaseBuffers();
  rmSync(path, { force: true });

  const saveLink = Math.min(rawD2H, rawDisk);
  const loadLink = Math.min(rawH2D, rawDiskRead);
  const results = {
    device: info,
    cuda: { runtimeVersion: status.runtimeVersion, driverVersion: status.driverVersion },
    bytes: o.totalBytes,
    tensors: o.tensors,
    chunkBytes: o.chunkBytes,
    staging: { buffers: o.stagingBuffers, bufferBytes: o.stagingBufferBytes },
    coldReads: cold,
    GBps: { rawD2H, rawH2D, rawDiskWrite: rawDisk, rawDiskRead, staging, save, load },
    ratios: { stagingVsRawD2H: staging / rawD2H, saveVsSlowerLink: save / saveLink, loadVsSlowerLink: load / loadLink },
    targets: { stagingVsRawD2H: TARGET_STAGING, saveVsSlowerLink: TARGET_SAVE },
    verified,
  };
  const pass = { staging: results.ratios.stagingVsRawD2H >= TARGET_STAGING, save: results.ratios.saveVsSlowerLink >= TARGET_SAVE };

  const row = (name, value, ratio = "", target = "") => console.log(`${name.padEnd(42)} ${fmt(value).padStart(8)} ${ratio.padEnd(40)} ${target}`);
  console.log(`\n${"".padEnd(42)} ${"GB/s".padStart(8)}`);
  row("raw cudaMemcpy device->host (pinned)", rawD2H);
  row("raw cudaMemcpy host->device (pinned)", rawH2D);
  row("raw disk write (fsync)", rawDisk);
  row(`raw disk read (${cold ? "page cache dropped" : "page cache NOT dropped"})`, rawDiskRead);
  row("D2H staging (toSource().chunks())", staging, `${fmt(results.ratios.stagingVsRawD2H)} x raw D2H`, `target >= ${TARGET_STAGING}: ${pass.staging ? "PASS" : "FAIL"}`);
  row("save (fabric.save, NodeFileIO)", save, `${fmt(results.ratios.saveVsSlowerLink)} x min(raw D2H, raw disk write)`, `target >= ${TARGET_SAVE}: ${pass.save ? "PASS" : "FAIL"}`);
  row("load (fabric.load in place)", load, `${fmt(results.ratios.loadVsSlowerLink)} x min(raw H2D, raw disk read)`, "(reported)");
  console.log(`loaded contents ${verified ? "match" : "DO NOT match"} what was saved (CRC32 per tensor)`);
  if (o.json) {
    mkdirSync(dirname(o.json), { recursive: true });
    writeFileSync(o.json, `${JSON.stringify({ ...results, pass }, null, 2)}\n`);
    console.log(`results: ${o.json}`);
  }
  if (!verified) return 1;
  if (o.checkTargets && !(pass.staging && pass.save)) return 1;
  return 0;
}

if (!existsSync(join(root, "package.json"))) throw new Error(`gpu-bench: ${root} is not the package folder`);
main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
