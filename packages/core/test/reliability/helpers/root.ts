import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Whether a test needing a root-only feature (mounting a tmpfs, an immutable file, running a child
 * as another user) must be skipped. Under CI=true a missing feature fails the suite instead
 * (DESIGN.md §7); elsewhere the test is skipped with a message saying what it needs.
 */
export function skipWithout(feature: "mount" | "setuid" | "chattr"): boolean {
  const why = missing(feature);
  if (why === null) return false;
  if (process.env.CI === "true") throw new Error(`[test setup] ${why}`);
  console.warn(`skipping ${feature} tests: ${why}`);
  return true;
}

const probed = new Map<string, string | null>();

function missing(feature: "mount" | "setuid" | "chattr"): string | null {
  if (probed.has(feature)) return probed.get(feature)!;
  let why: string | null = null;
  if (process.platform !== "linux" || process.getuid?.() !== 0) {
    why = `these tests need root on Linux (running as uid ${process.getuid?.() ?? "?"} on ${process.platform})`;
  } else {
    const dir = mkdtempSync(join(tmpdir(), "savepoint-probe-"));
    try {
      if (feature === "mount") {
        execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir], { stdio: "pipe" });
        execFileSync("umount", [dir], { stdio: "pipe" });
      } else if (feature === "chattr") {
        const f = join(dir, "f");
        writeFileSync(f, "x");
        execFileSync("chattr", ["+i", f], { stdio: "pipe" });
        execFileSync("chattr", ["-i", f], { stdio: "pipe" });
      } else {
        execFileSync(process.execPath, ["-e", "0"], { uid: 65534, gid: 65534, stdio: "pipe" });
      }
    } catch (err) {
      const e = err as { stderr?: Buffer; message: string };
      why = `${feature} failed: ${e.stderr?.toString().trim() || e.message} (needs CAP_SYS_ADMIN for mount, CAP_LINUX_IMMUTABLE and ext4/xfs for chattr, CAP_SETUID for setuid)`;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  probed.set(feature, why);
  return why;
}

/** Mounts a tmpfs of `bytes` at `dir` (root only); returns an unmount function. */
export function mountTmpfs(dir: string, bytes: number): () => void {
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${bytes},mode=0777`, "tmpfs", dir], { stdio: "pipe" });
  return () => execFileSync("umount", ["-l", dir], { stdio: "pipe" });
}

export function remount(dir: string, mode: "ro" | "rw"): void {
  execFileSync("mount", ["-o", `remount,${mode}`, dir], { stdio: "pipe" });
}
