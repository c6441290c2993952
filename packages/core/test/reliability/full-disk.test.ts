/**
 * Full disk: saves onto a small tmpfs the test mounts (root only; under CI=true a missing mount
 * fails, elsewhere the file is skipped with a message). A save that does not fit must fail with an
 * error that says the disk is full, leave the previous checkpoint loadable and byte-identical, and
 * remove its partial file.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CheckpointWriteError, Fabric, HostTensor, type StoredTensor } from "../../src/index.js";
import { CheckpointManager } from "../../src/manager/checkpoint-manager.js";
import { mountTmpfs, skipWithout } from "./helpers/root.js";

const MiB = 1 << 20;
const skip = skipWithout("mount");

const tensor = (mib: number, fill: number) => new HostTensor("uint8", [mib * MiB], new Uint8Array(mib * MiB).fill(fill));
const leftovers = (dir: string) => readdirSync(dir).filter((f) => f.includes(".savepoint-tmp-"));
const free = (dir: string) => {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
};

describe.skipIf(skip)("saving to a full file system", () => {
  let mnt: string;
  let unmount: () => void;
  beforeAll(() => {
    mnt = mkdtempSync(join(tmpdir(), "savepoint-full-"));
    unmount = mountTmpfs(mnt, 16 * MiB);
  });
  afterAll(() => {
    unmount?.();
    rmSync(mnt, { recursive: true, force: true });
  });

  it("a checkpoint larger than the free space fails, says the disk is full, and leaves the previous one", async () => {
    const fabric = new Fabric();
    const path = join(mnt, "run.ckpt");
    await fabric.save(path, { version: 1, t: tensor(4, 1) });
    const before = readFileSync(path);
    const freeBefore = free(mnt);

    const err = await fabric.save(path, { version: 2, t: tensor(24, 2) }).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(CheckpointWriteError);
    expect(err!.message).toMatch(/^\[savepoint\] cannot write .*run\.ckpt: the disk is full/);
    expect(err!.message).toMatch(/previous checkpoint is intact and the partial file was removed/);
    expect(readFileSync(path).equals(before)).toBe(true);
    expect(leftovers(mnt)).toEqual([]);
    expect(free(mnt)).toBe(freeBefore);
    const ckpt = await fabric.load(path);
    expect(ckpt.version).toBe(1);
    expect((await (ckpt.t as StoredTensor).bytes()).every((b) => b === 1)).toBe(true);
  });

  it("a nearly full disk: a small save to a new name fails cleanly too", async () => {
    const filler = join(mnt, "filler");
    writeFileSync(filler, new Uint8Array(Math.max(0, free(mnt) - 256 * 1024)));
    try {
      const err = await new Fabric().save(join(mnt, "small.ckpt"), { t: tensor(1, 3) }).catch((e: unknown) => e as Error);
      expect(err).toBeInstanceOf(CheckpointWriteError);
      expect(err!.message).toMatch(/disk is full/);
      expect(readdirSync(mnt).filter((f) => f.includes("small"))).toEqual([]);
    } finally {
      rmSync(filler);
    }
  });

  it("an async save reports the full disk on done, and the previous checkpoint stays", async () => {
    const fabric = new Fabric();
    const path = join(mnt, "async.ckpt");
    await fabric.save(path, { version: 1, t: tensor(2, 1) });
    const before = readFileSync(path);
    const pending = await fabric.save(path, { version: 2, t: tensor(24, 2) }, { async: true });
    await expect(pending.done).rejects.toThrow(/disk is full/);
    expect(readFileSync(path).equals(before)).toBe(true);
    expect(leftovers(mnt)).toEqual([]);
    fabric.releaseStaging();
  });

  it("CheckpointManager: a save that does not fit deletes nothing, moves no pointer, leaves no sidecar", async () => {
    const dir = join(mnt, "managed");
    const m = new CheckpointManager(new Fabric(), dir, { keepLast: 1 });
    await m.save(1, { t: tensor(2, 1) }, { loss: 1 });
    const err = await m.save(2, { t: tensor(24, 2) }, { loss: 0.5 }).then(() => undefined, (e: unknown) => e as Error);
    expect(err).toBeInstanceOf(CheckpointWriteError);
    expect(err!.message).toMatch(/disk is full/);
    expect(readdirSync(dir).sort()).toEqual(["latest", "step-000000001.ckpt", "step-000000001.ckpt.meta.json"]);
    expect(JSON.parse(readFileSync(join(dir, "latest"), "utf8")).step).toBe(1);
    expect((await m.restore({}))!.step).toBe(1);
  });
});
