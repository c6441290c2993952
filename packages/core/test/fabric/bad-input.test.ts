import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CheckpointNotFoundError,
  CorruptCheckpointError,
  Fabric,
  HostTensor,
  InvalidArgumentError,
  PyObject,
  SavepointError,
  UnsafeCheckpointError,
  UnsupportedFormatError,
} from "../../src/index.js";
import { runPython, skipWithoutTorch } from "../helpers/python.js";
import { mlp, tf, useCpu } from "../helpers/tfjs.js";

let dir: string;
let good: Uint8Array;
beforeAll(async () => {
  await useCpu();
  dir = mkdtempSync(join(tmpdir(), "savepoint-bad-"));
  await new Fabric().save(join(dir, "good.ckpt"), { model: mlp(1), step: 1, t: HostTensor.fromValues("float32", [1000], new Array(1000).fill(1.5)) });
  good = readFileSync(join(dir, "good.ckpt"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function snapshot(): string {
  return readdirSync(dir, { recursive: true })
    .map(String)
    .sort()
    .map((f) => {
      const p = join(dir, f);
      try {
        return `${f}:${createHash("sha1").update(readFileSync(p)).digest("hex")}`;
      } catch {
        return `${f}/`;
      }
    })
    .join("\n");
}

/** Loads `name` expecting `Err`, a [savepoint] message matching `pattern`, and an unchanged folder. */
async function expectRefused(name: string, Err: new (...a: never[]) => Error, pattern: RegExp, options?: ConstructorParameters<typeof Fabric>[0]) {
  const before = snapshot();
  const err = await new Fabric(options).load(join(dir, name)).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(Err);
  expect(err).toBeInstanceOf(SavepointError);
  expect((err as Error).message).toMatch(/^\[savepoint\] /);
  expect((err as Error).message).toMatch(pattern);
  expect(snapshot()).toBe(before);
  return err as Error;
}

function safetensors(header: object, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  out.set(json, 8);
  out.set(data, 8 + json.byteLength);
  return out;
}

describe("bad input gets a typed error naming the problem, and nothing on disk changes", () => {
  it("a missing file", async () => {
    await expectRefused("nope.ckpt", CheckpointNotFoundError, /nope\.ckpt/);
  });

  it("a directory instead of a file", async () => {
    mkdirSync(join(dir, "folder.ckpt"), { recursive: true });
    await expectRefused("folder.ckpt", UnsupportedFormatError, /folder\.ckpt is a directory/);
  });

  it("a truncated file", async () => {
    writeFileSync(join(dir, "truncated.ckpt"), good.subarray(0, Math.floor(good.byteLength * 0.6)));
    await expectRefused("truncated.ckpt", CorruptCheckpointError, /truncated\.ckpt/);
  });

  it("a flipped byte inside a tensor record is caught by its CRC, before any value reaches the state", async () => {
    // Find the bytes of tensor t (1000 × 1.5f = 00 00 c0 3f ...) and flip one in the middle.
    const pattern = Buffer.from("0000c03f".repeat(8), "hex");
    const at = Buffer.from(good).indexOf(pattern);
    expect(at).toBeGreaterThan(0);
    const damaged = good.slice();
    damaged[at + 1001]! ^= 0x40;
    writeFileSync(join(dir, "flipped.ckpt"), damaged);
    const t = tf.variable(tf.zeros([1000]));
    const state = { step: 0, t };
    const err = await new Fabric().load(join(dir, "flipped.ckpt"), state).catch((e) => e);
    expect(err).toBeInstanceOf(CorruptCheckpointError);
    expect(err.message).toMatch(/flipped\.ckpt:archive\/data\/\d+.*CRC32/);
    expect(Array.from(t.dataSync()).every((v) => v === 0)).toBe(true);
    const ckpt = await new Fabric({ verify: false }).load(join(dir, "flipped.ckpt"));
    expect((await (ckpt.t as HostTensor).data())[250]).not.toBe(1.5);
  });

  it("wrong magic", async () => {
    writeFileSync(join(dir, "magic.ckpt"), new TextEncoder().encode("this is not a checkpoint at all, just text\n".repeat(4)));
    await expectRefused("magic.ckpt", UnsupportedFormatError, /magic\.ckpt.*no format savepoint reads/);
  });

  it("header offsets past the end", async () => {
    writeFileSync(join(dir, "offsets.safetensors"), safetensors({ w: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }, new Uint8Array(8)));
    await expectRefused("offsets.safetensors", CorruptCheckpointError, /offsets\.safetensors/);
    const zip = good.slice();
    const view = new DataView(zip.buffer);
    const eocd = zip.byteLength - 22;
    view.setUint32(eocd + 16, zip.byteLength + 1000, true);
    writeFileSync(join(dir, "cd-offset.ckpt"), zip);
    await expectRefused("cd-offset.ckpt", CorruptCheckpointError, /cd-offset\.ckpt/);
  });

  it("an unknown dtype", async () => {
    writeFileSync(join(dir, "dtype.safetensors"), safetensors({ w: { dtype: "X99", shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8)));
    await expectRefused("dtype.safetensors", UnsupportedFormatError, /X99.*\bw\b/);
  });

  it.skipIf(skipWithoutTorch())("a pickle that calls os.system: inert placeholder, nothing runs; refused under safe: strict", async () => {
    const marker = join(dir, "pwned");
    runPython(
      `import os, sys, torch
class Evil:
    def __reduce__(self):
        return (os.system, ("touch " + sys.argv[2],))
torch.save({"weights": torch.ones(2), "evil": Evil()}, sys.argv[1])`,
      [join(dir, "evil.pt"), marker],
    );
    expect(existsSync(marker)).toBe(false);
    const ckpt = await new Fabric().load(join(dir, "evil.pt"));
    expect(existsSync(marker)).toBe(false);
    const evil = ckpt.evil as PyObject;
    expect(evil).toBeInstanceOf(PyObject);
    expect([evil.module, evil.name]).toEqual(["posix", "system"]);
    await expectRefused("evil.pt", UnsafeCheckpointError, /evil\.pt.*posix\.system/, { safe: "strict" });
    expect(existsSync(marker)).toBe(false);
  });

  it("a filter key not in the state writes nothing", async () => {
    const before = snapshot();
    const err = await new Fabric().save(join(dir, "filtered.ckpt"), { step: 1 }, { filter: { model: () => true } }).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toMatch(/"model".*not in the state/);
    expect(snapshot()).toBe(before);
  });

  it("a value that cannot be stored is named by its path, and nothing is written", async () => {
    const before = snapshot();
    const err = await new Fabric().save(join(dir, "fn.ckpt"), { hparams: { schedule: () => 1 } }).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toMatch(/hparams\.schedule/);
    expect(snapshot()).toBe(before);
  });
});
