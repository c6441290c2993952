// Loading into tfjs CPU variables without allocating: a variable that owns its storage gets the
// checkpoint's bytes copied into that storage once the record is read and verified; storage shared
// with another tensor, or held by an async save in flight, is never written.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cpuBackend, CorruptCheckpointError, Fabric, HostTensor, StagingPool, toWritableTree, type StoredTensor } from "../../src/index.js";
import { tf, useCpu } from "../helpers/tfjs.js";

const N = 1 << 19; // 2 MiB of float32: above the size async saves stage by reference
let dir: string;
beforeAll(async () => {
  await useCpu();
  dir = mkdtempSync(join(tmpdir(), "savepoint-in-place-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ramp = (k: number) => Float32Array.from({ length: N }, (_, i) => i * k);
/** A variable whose storage no other tensor shares (tfjs reference count 1). */
const owned = (values: Float32Array) => tf.tidy(() => tf.variable(tf.tensor(values)));

async function saved(name: string, values: Float32Array): Promise<string> {
  const path = join(dir, name);
  await new Fabric().save(path, { w: HostTensor.fromValues("float32", [N], values) });
  return path;
}

describe("loading into tfjs CPU variables", () => {
  it("writes into the storage of a variable that owns it (no new array)", async () => {
    const path = await saved("owned.pt", ramp(3));
    const w = owned(ramp(1));
    const storage = w.dataSync();
    await new Fabric().load(path, { w });
    expect(w.dataSync()).toBe(storage);
    expect(Array.from(storage.subarray(0, 4))).toEqual([0, 3, 6, 9]);
    expect(w.dataSync()[N - 1]).toBe((N - 1) * 3);
    w.dispose();
  });

  it("assigns fresh storage when another tensor shares the variable's, which keeps its values", async () => {
    const path = await saved("shared.pt", ramp(3));
    const t = tf.tensor(ramp(1));
    const w = tf.variable(t); // shares t's storage
    await new Fabric().load(path, { w });
    expect(w.dataSync()[1]).toBe(3);
    expect(t.dataSync()[1]).toBe(1);
    tf.dispose([t, w]);
  });

  it("leaves the variable untouched when the record's CRC fails", async () => {
    const path = await saved("damaged.pt", ramp(3));
    const bytes = readFileSync(path);
    // The record starts right after the pickle; flip a byte deep inside the tensor data.
    const needle = Buffer.from(new Float32Array([3000, 3003, 3006]).buffer);
    const at = bytes.indexOf(needle);
    expect(at).toBeGreaterThan(0);
    bytes[at + 1]! ^= 0x10;
    writeFileSync(path, bytes);
    const w = owned(ramp(1));
    await expect(new Fabric().load(path, { w })).rejects.toBeInstanceOf(CorruptCheckpointError);
    expect(w.dataSync()[1000]).toBe(1000);
    expect(w.dataSync()[N - 1]).toBe(N - 1);
    w.dispose();
  });

  it("does not write into storage an async save still holds; the staged values stay as they were", async () => {
    const path = await saved("pinned.pt", ramp(3));
    const w = owned(ramp(1));
    const pool = new StagingPool();
    const staged = await pool.stage(toWritableTree({ w }, cpuBackend()));
    const held = (staged.tree as { w: StoredTensor }).w;
    await new Fabric().load(path, { w });
    expect(w.dataSync()[1]).toBe(3);
    expect(new Float32Array((await held.bytes()).slice().buffer)[1]).toBe(1);
    staged.release();
    // Released: the next load writes in place again.
    const storage = w.dataSync();
    await new Fabric().load(path, { w });
    expect(w.dataSync()).toBe(storage);
    w.dispose();
  });
});
