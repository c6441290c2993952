// Helpers shared by the contender scripts: timing, memory and page-cache control, result output.
import { readFileSync, writeFileSync, openSync, closeSync, readSync, fsyncSync } from "node:fs";
import { execFileSync } from "node:child_process";

export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;

/** The contender's arguments: one JSON object in argv[2]. */
export function args() {
  return JSON.parse(process.argv[2] ?? "{}");
}

/** Prints the result line the runner reads (the last stdout line starting with RESULT). */
export function report(result) {
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

export function now() {
  return performance.now() / 1000;
}

/** Peak resident set (VmHWM) and current (VmRSS) in bytes, from /proc/self/status. */
export function rss() {
  const s = readFileSync("/proc/self/status", "utf8");
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(s)?.[1] ?? NaN) * 1024;
  return { hwm: kb("VmHWM"), rss: kb("VmRSS") };
}

/** Resets VmHWM to the current RSS (Linux: write 5 to /proc/self/clear_refs). */
export function resetPeak() {
  try {
    writeFileSync("/proc/self/clear_refs", "5");
    return true;
  } catch {
    return false;
  }
}

/** Bytes this process has read through read syscalls so far (/proc/self/io rchar). */
export function rchar() {
  try {
    return Number(/^rchar:\s+(\d+)/m.exec(readFileSync("/proc/self/io", "utf8"))?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

/** Flushes dirty pages to disk (untimed, so one run's writeback does not land in the next). */
export function syncAll() {
  execFileSync("sync");
}

/** Flushes dirty pages, then drops the page cache if allowed. Returns whether the drop worked. */
export function dropCaches() {
  syncAll();
  try {
    writeFileSync("/proc/sys/vm/drop_caches", "3");
    return true;
  } catch {
    return false;
  }
}

/** Reads a file once (untimed) so it sits in the page cache. */
export function prewarm(path) {
  const fd = openSync(path, "r");
  const buf = Buffer.allocUnsafe(8 << 20);
  try {
    let off = 0;
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, off);
      if (n === 0) break;
      off += n;
    }
  } finally {
    closeSync(fd);
  }
}

export function syncFile(path) {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function gc() {
  globalThis.gc?.();
}

function cpuTimes() {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + (f[4] ?? 0);
  return { idle, total: f.reduce((a, b) => a + b, 0) };
}

/**
 * This machine is shared: waits (up to `maxMs`) until other processes leave at least about one
 * core free, sampling /proc/stat, so a measurement is not taken in the middle of someone's build.
 * Returns the busy fraction seen last (0..1 of all cores) and how long it waited.
 */
export async function awaitQuiet(maxMs = Number(process.env.BENCH_QUIET_MS ?? 20000), threshold = 0.3) {
  const start = Date.now();
  let busy = 1;
  for (;;) {
    const a = cpuTimes();
    await new Promise((r) => setTimeout(r, 400));
    const b = cpuTimes();
    busy = 1 - (b.idle - a.idle) / Math.max(1, b.total - a.total);
    if (busy <= threshold || Date.now() - start >= maxMs) break;
  }
  return { busy: +busy.toFixed(2), waitedMs: Date.now() - start };
}

/** Times `fn` (seconds of wall clock, and CPU seconds of this process, all threads). */
export async function timed(fn) {
  const c0 = process.cpuUsage();
  const t0 = now();
  const value = await fn();
  const seconds = now() - t0;
  const c = process.cpuUsage(c0);
  return { seconds, cpu: (c.user + c.system) / 1e6, value };
}
