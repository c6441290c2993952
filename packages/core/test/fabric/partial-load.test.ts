import { beforeAll, describe, expect, it } from "vitest";
import { Fabric, HostTensor, MemoryIO, type StoredTensor } from "../../src/index.js";
import { mlp, tf, useCpu } from "../helpers/tfjs.js";

beforeAll(useCpu);

function big(n: number, seed: number): HostTensor {
  return HostTensor.fromValues("float32", [n], Array.from({ length: n }, (_, i) => Math.sin(i + seed)));
}

describe("lazy and partial loading reads only what is asked for", () => {
  it("loading only `model` reads none of the (larger) optimizer bytes", async () => {
    const io = new MemoryIO();
    const fabric = new Fabric({ io });
    const model = mlp(1, { units: 256 });
    const modelBytes = model.weights.reduce((n, w) => n + w.read().size * 4, 0);
    // Optimizer-like state twice the model's size.
    const optimizer = { state: { exp_avg: big(modelBytes / 4, 1), exp_avg_sq: big(modelBytes / 4, 2) } };
    await fabric.save("ckpt.pt", { model, optimizer, step: 3 });
    const fileBytes = io.files.get("ckpt.pt")!.byteLength;
    expect(fileBytes).toBeGreaterThan(3 * modelBytes);

    io.bytesRead = 0;
    const target = mlp(2, { units: 256 });
    const remainder = await fabric.load("ckpt.pt", { model: target });
    const read = io.bytesRead;
    // Model tensors plus headers and the pickle; none of the optimizer's 2 × modelBytes.
    expect(read).toBeGreaterThanOrEqual(modelBytes);
    expect(read).toBeLessThan(modelBytes * 1.05 + 16 * 1024);
    expect(target.weights.map((w) => Array.from(w.read().dataSync()))).toEqual(model.weights.map((w) => Array.from(w.read().dataSync())));

    // The remainder is lazy: touching one optimizer tensor reads just that tensor.
    const before = io.bytesRead;
    const t = (remainder.optimizer as { state: Record<string, StoredTensor> }).state.exp_avg!;
    await t.data();
    expect(io.bytesRead - before).toBe(t.byteLength);
    tf.dispose(target.weights.map((w) => w.read()));
  });

  it("load(path) without a state reads headers only until a tensor is touched", async () => {
    const io = new MemoryIO();
    const fabric = new Fabric({ io });
    await fabric.save("big.pt", { a: big(1 << 18, 1), b: big(1 << 18, 2) });
    io.bytesRead = 0;
    const ckpt = await fabric.load("big.pt");
    expect(io.bytesRead).toBeLessThan(16 * 1024);
    await (ckpt.b as StoredTensor).bytes();
    expect(io.bytesRead).toBeLessThan((1 << 20) + 16 * 1024);
  });
});
