import { beforeAll, describe, expect, it } from "vitest";
import { CheckpointWriteError, Fabric, MemoryIO, type AtomicWrite, type StoredTensor } from "../../src/index.js";
import { tf, useCpu } from "../helpers/tfjs.js";

beforeAll(useCpu);

/** MemoryIO whose commits wait for `open()` and can be made to fail. */
class GatedIO extends MemoryIO {
  #release!: () => void;
  gate = new Promise<void>((r) => (this.#release = r));
  fail = false;
  commits: string[] = [];
  open(): void {
    this.#release();
  }
  reset(): void {
    this.gate = new Promise<void>((r) => (this.#release = r));
  }
  override async openWrite(path: string): Promise<AtomicWrite> {
    const inner = await super.openWrite(path);
    const io = this;
    return {
      get position() {
        return inner.position;
      },
      write: (c) => inner.write(c),
      abort: () => inner.abort(),
      async commit() {
        await io.gate;
        if (io.fail) {
          await inner.abort();
          throw new Error("disk on fire");
        }
        io.commits.push(path);
        await inner.commit();
      },
    };
  }
}

describe("async save", () => {
  it("returns once staged; the file holds the values of that moment, written in the background", async () => {
    const io = new GatedIO();
    const fabric = new Fabric({ io });
    const w = tf.variable(tf.tensor1d([1, 2, 3]));
    const pending = await fabric.save("a.ckpt", { w, step: 1 }, { async: true });
    expect(io.files.has("a.ckpt")).toBe(false);
    w.assign(tf.tensor1d([9, 9, 9]));
    io.open();
    await pending.done;
    const ckpt = await fabric.load("a.ckpt");
    expect(Array.from((await (ckpt.w as StoredTensor).data()) as Float32Array)).toEqual([1, 2, 3]);
  });

  it("a new save waits for the one in flight, and staging buffers are reused", async () => {
    const io = new GatedIO();
    const fabric = new Fabric({ io });
    const w = tf.variable(tf.zeros([1024]));
    const first = await fabric.save("a.ckpt", { w }, { async: true });
    const pooledBefore = fabric.stagingBytes;
    let secondReturned = false;
    const second = fabric.save("b.ckpt", { w }, { async: true }).then((h) => {
      secondReturned = true;
      return h;
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(secondReturned).toBe(false);
    io.open();
    await first.done;
    await (await second).done;
    expect(io.commits).toEqual(["a.ckpt", "b.ckpt"]);
    expect(fabric.stagingBytes).toBe(4096);
    expect(pooledBefore).toBe(0);
    const third = await fabric.save("c.ckpt", { w }, { async: true });
    await third.done;
    expect(fabric.stagingBytes).toBe(4096);
  });

  it("reports a failure on done, and on the next save when nobody looked at done", async () => {
    const io = new GatedIO();
    const fabric = new Fabric({ io });
    io.fail = true;
    io.open();
    const observed = await fabric.save("x.ckpt", { step: 1 }, { async: true });
    await expect(observed.done).rejects.toThrow(/disk on fire/);
    await fabric.save("y.ckpt", { step: 2 }, { async: true });
    // Let the background write reach its (failing) commit before the disk "recovers".
    await new Promise((r) => setTimeout(r, 50));
    io.fail = false;
    const err = await fabric.save("z.ckpt", { step: 3 }).catch((e) => e);
    expect(err).toBeInstanceOf(CheckpointWriteError);
    expect(err.message).toMatch(/async save to y\.ckpt failed: disk on fire/);
    expect(io.files.has("y.ckpt")).toBe(false);
    await fabric.save("z.ckpt", { step: 3 });
    expect(io.files.has("z.ckpt")).toBe(true);
  });
});
