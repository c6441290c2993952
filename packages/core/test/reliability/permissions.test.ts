/**
 * Read-only folders and files give a clear error, never a silent success. Tests run as root here,
 * and root ignores permission bits, so each case uses something root cannot bypass: a tmpfs
 * remounted read-only, an immutable file (chattr +i), and a child process running as `nobody`
 * (uid 65534) on files prepared for that uid. Under CI=true a missing feature fails the suite;
 * elsewhere the case is skipped with a message.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CheckpointWriteError, Fabric, HostTensor } from "../../src/index.js";
import { CheckpointManager } from "../../src/manager/checkpoint-manager.js";
import { bundleChild, removeChild } from "./helpers/children.js";
import { mountTmpfs, remount, skipWithout } from "./helpers/root.js";

const state = (v: number) => ({ version: v, t: HostTensor.fromValues("float32", [4], [v, v, v, v]) });
const leftovers = (dir: string) => readdirSync(dir).filter((f) => f.includes(".savepoint-tmp-"));

describe.skipIf(skipWithout("mount"))("a read-only file system (tmpfs remounted ro)", () => {
  let mnt: string;
  let unmount: () => void;
  beforeAll(async () => {
    mnt = mkdtempSync(join(tmpdir(), "savepoint-ro-"));
    unmount = mountTmpfs(mnt, 4 << 20);
    await new Fabric().save(join(mnt, "a.ckpt"), state(1));
    await new CheckpointManager(new Fabric(), join(mnt, "managed"), { keepLast: 1 }).save(1, state(1));
    remount(mnt, "ro");
  });
  afterAll(() => {
    unmount?.();
    rmSync(mnt, { recursive: true, force: true });
  });

  it("saving over a checkpoint, or to a new name, fails saying so; the old one still loads", async () => {
    const fabric = new Fabric();
    const before = readFileSync(join(mnt, "a.ckpt"));
    const over = await fabric.save(join(mnt, "a.ckpt"), state(2)).catch((e: unknown) => e as Error);
    expect(over).toBeInstanceOf(CheckpointWriteError);
    expect(over!.message).toMatch(/a\.ckpt.*read-only/);
    const fresh = await fabric.save(join(mnt, "b.ckpt"), state(2)).catch((e: unknown) => e as Error);
    expect(fresh).toBeInstanceOf(CheckpointWriteError);
    expect(fresh!.message).toMatch(/b\.ckpt: the file system is read-only/);
    expect(readFileSync(join(mnt, "a.ckpt")).equals(before)).toBe(true);
    expect((await fabric.load(join(mnt, "a.ckpt"))).version).toBe(1);
  });

  it("CheckpointManager.save fails; restore still works", async () => {
    const m = new CheckpointManager(new Fabric(), join(mnt, "managed"), { keepLast: 1 });
    await expect(m.save(2, state(2))).rejects.toThrow(/read-only/);
    expect((await m.list()).map((c) => c.step)).toEqual([1]);
    const s = { version: 0 };
    expect((await m.restore(s))!.step).toBe(1);
    expect(s.version).toBe(1);
  });
});

describe.skipIf(skipWithout("chattr"))("an immutable file (chattr +i: even root cannot replace it)", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "savepoint-immutable-"));
  });
  afterAll(() => {
    try {
      execFileSync("chattr", ["-i", join(dir, "a.ckpt")], { stdio: "pipe" });
    } catch {
      /* never set */
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it("saving over it fails with a clear error and leaves no temporary", async () => {
    const path = join(dir, "a.ckpt");
    await new Fabric().save(path, state(1));
    execFileSync("chattr", ["+i", path], { stdio: "pipe" });
    const err = await new Fabric().save(path, state(2)).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(CheckpointWriteError);
    expect(err!.message).toMatch(/a\.ckpt: the file is read-only \(EPERM\)/);
    expect(leftovers(dir)).toEqual([]);
    expect((await new Fabric().load(path)).version).toBe(1);
  });
});

describe.skipIf(skipWithout("setuid"))("permission bits, enforced on a child running as nobody (uid 65534)", () => {
  let base: string;
  let script: string;
  const NOBODY = 65534;
  const probe = (...args: string[]) => {
    const r = spawnSync(process.execPath, [script, ...args], { uid: NOBODY, gid: NOBODY, encoding: "utf8", cwd: "/" });
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout.trim().split("\n").pop()!) as { ok?: true; error?: string; message?: string };
  };
  beforeAll(async () => {
    script = await bundleChild("io-probe", { stubTfjs: true });
    base = mkdtempSync(join(tmpdir(), "savepoint-perm-"));
    chmodSync(base, 0o755);
  });
  afterAll(() => {
    removeChild(script);
    rmSync(base, { recursive: true, force: true });
  });

  it("a folder nobody may write to: save fails, naming the path and the fix", async () => {
    const dir = join(base, "locked");
    mkdirSync(dir, { mode: 0o755 }); // owned by root
    const r = probe("save", join(dir, "a.ckpt"));
    expect(r.error).toBe("CheckpointWriteError");
    expect(r.message).toMatch(/cannot write .*locked\/a\.ckpt: permission denied: make the folder writable/);
    expect(readdirSync(dir)).toEqual([]);
    const m = probe("manager-save", join(dir, "managed"));
    expect(m.error).toBe("CheckpointWriteError");
    expect(m.message).toMatch(/permission denied/);
  });

  it("a read-only file in a writable folder: not replaced (rename alone would allow it)", async () => {
    const dir = join(base, "mine");
    mkdirSync(dir, { mode: 0o755 });
    chownSync(dir, NOBODY, NOBODY);
    const path = join(dir, "a.ckpt");
    await new Fabric().save(path, state(1));
    chownSync(path, NOBODY, NOBODY);
    chmodSync(path, 0o444);
    const before = readFileSync(path);
    const r = probe("save", path);
    expect(r.error).toBe("CheckpointWriteError");
    expect(r.message).toMatch(/a\.ckpt: the file is read-only \(EACCES\).*chmod u\+w/);
    expect(readFileSync(path).equals(before)).toBe(true);
    expect(leftovers(dir)).toEqual([]);
    // Made writable again, the same save goes through.
    chmodSync(path, 0o644);
    expect(probe("save", path)).toEqual({ ok: true });
  });

  it("an unreadable checkpoint: load fails saying permission denied", async () => {
    const path = join(base, "secret.ckpt");
    writeFileSync(path, "x");
    chmodSync(path, 0o600); // root's
    const r = probe("load", path);
    expect(r.error).toBe("SavepointError");
    expect(r.message).toMatch(/cannot read .*secret\.ckpt: permission denied: make the folder readable/);
  });
});
