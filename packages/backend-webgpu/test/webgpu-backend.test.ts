import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";
import { CorruptCheckpointError, HostTensor, type DType, type TensorSource } from "@savepoint/core";
import { webgpuBackend } from "../src/index.js";
import { nodeWebGpuOrSkip } from "./helpers/node-webgpu.js";
import { bits, gpuSide, onGpu, soleVariable, usedBuffers } from "./helpers/tensors.js";

const gpu = await nodeWebGpuOrSkip();

async function collect(src: TensorSource, chunkBytes: number): Promise<{ bytes: Uint8Array; sizes: number[] }> {
  const parts: Uint8Array[] = [];
  for await (const c of src.chunks(chunkBytes)) parts.push(c.slice());
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let off = 0;
  for (const p of parts) (bytes.set(p, off), (off += p.byteLength));
  return { bytes, sizes: parts.map((p) => p.byteLength) };
}

/** A source that yields its first chunk, then fails like a record whose CRC does not match. */
function failingSource(dtype: DType, shape: number[], values: number[]): TensorSource {
  const good = HostTensor.fromValues(dtype, shape, values);
  return {
    dtype,
    shape,
    byteLength: good.byteLength,
    async *chunks() {
      yield good.raw.subarray(0, 8);
      throw new CorruptCheckpointError("record data/0: CRC mismatch");
    },
  };
}

describe.runIf(gpu)("WebGpuBackend on real WebGPU", () => {
  it("reads a GPU buffer back in bounded chunks and leaves no host copy cached in tfjs", async () => {
    const n = 300_001;
    const t = onGpu(tf.tidy(() => tf.mul(tf.range(0, n, 1, "float32"), 0.5)));
    expect(gpuSide().tensorMap.get(t.dataId).values ?? null).toBeNull();
    const { bytes, sizes } = await collect(webgpuBackend().toSource(t), 64 * 1024);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(64 * 1024);
    expect(sizes.length).toBe(Math.ceil((n * 4) / (64 * 1024)));
    const expected = Float32Array.from({ length: n }, (_, i) => i * 0.5);
    expect(Buffer.from(bytes).equals(Buffer.from(expected.buffer))).toBe(true);
    // tfjs's data() would have cached the whole tensor on the host; the chunked read must not.
    expect(gpuSide().tensorMap.get(t.dataId).values ?? null).toBeNull();
    t.dispose();
  });

  it("caps chunks at stagingBytes, and returns its staging buffers when the reader stops early", async () => {
    const t = onGpu(tf.ones([1000], "int32"));
    const used = usedBuffers();
    const { sizes } = await collect(webgpuBackend({ stagingBytes: 1000 }).toSource(t), 1 << 20);
    expect(sizes).toEqual([1000, 1000, 1000, 1000]);
    for await (const _ of webgpuBackend({ stagingBytes: 400 }).toSource(t).chunks()) break;
    expect(usedBuffers()).toBe(used);
    t.dispose();
  });

  it("reads bool tensors (4 bytes per element on the GPU) as one byte per element", async () => {
    const values = Array.from({ length: 1001 }, (_, i) => (i % 3 === 0 ? 1 : 0));
    const t = onGpu(tf.tensor(values, [1001], "bool"));
    const { bytes, sizes } = await collect(webgpuBackend().toSource(t), 100);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(100);
    expect(Array.from(bytes)).toEqual(values);
    t.dispose();
  });

  it("keeps streaming a tensor disposed mid-save (its buffer is held until the read ends)", async () => {
    const t = onGpu(tf.tidy(() => tf.range(0, 4096, 1, "int32")));
    const parts: number[] = [];
    let first = true;
    for await (const c of webgpuBackend().toSource(t).chunks(4096)) {
      if (first) {
        t.dispose();
        // Reuse the freed sizes: without the hold, these kernels would overwrite the buffer.
        const reuse = Array.from({ length: 4 }, () => onGpu(tf.fill([4096], 7, "int32")));
        usedBuffers(); // submits those kernels before our next copies
        tf.dispose(reuse);
        first = false;
      }
      parts.push(...new Int32Array(c.slice().buffer));
    }
    expect(parts).toEqual(Array.from({ length: 4096 }, (_, i) => i));
  });

  it("loads into the variable's own GPU buffer, in place", async () => {
    const v = soleVariable([1, 2, 3, 4], [4]);
    const before = gpuSide().tensorMap.get(v.dataId).resource;
    const dataId = v.dataId;
    await v.data(); // tfjs now caches host values, which the in-place write must invalidate
    await webgpuBackend().assign(v, HostTensor.fromValues("float32", [4], [5, 6, 7, 8]), "w");
    expect(v.dataId).toBe(dataId);
    expect(gpuSide().tensorMap.get(v.dataId).resource).toBe(before);
    expect(Array.from(await v.data())).toEqual([5, 6, 7, 8]);
    v.dispose();
  });

  it("does not write through data a variable shares with another tensor (tfjs tensors are immutable)", async () => {
    const init = onGpu(tf.tensor([1, 2, 3], [3], "int32"));
    const v = tf.variable(init);
    expect(gpuSide().tensorMap.get(v.dataId).refCount).toBe(2);
    await webgpuBackend().assign(v, HostTensor.fromValues("int64", [3], [7, 8, 9]), "w");
    expect(Array.from(await v.data())).toEqual([7, 8, 9]);
    expect(Array.from(await init.data())).toEqual([1, 2, 3]);
    tf.dispose([init, v]);
  });

  it("leaves the variable and tfjs's buffer pool as they were when the checkpoint fails midway", async () => {
    const v = soleVariable([1, 2, 3, 4, 5, 6], [6]);
    const used = usedBuffers();
    await expect(webgpuBackend().assign(v, failingSource("float32", [6], [9, 9, 9, 9, 9, 9]), "w")).rejects.toBeInstanceOf(CorruptCheckpointError);
    expect(Array.from(await v.data())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(usedBuffers()).toBe(used);
    v.dispose();
  });

  it("loads bool and converted dtypes into GPU variables, and creates GPU tensors", async () => {
    const b = soleVariable([1, 0, 1], [3], "bool");
    await webgpuBackend().assign(b, HostTensor.fromValues("uint8", [3], [0, 5, 0]), "b");
    expect(Array.from(await b.data())).toEqual([0, 1, 0]);
    const f = soleVariable([0, 0], [2]);
    await webgpuBackend().assign(f, HostTensor.fromValues("float16", [2], [0.5, -65504]), "f");
    expect(Array.from(await f.data())).toEqual([0.5, -65504]);
    const n = 40_000; // past the size below which tfjs's own lazy upload is used
    const c = (await webgpuBackend().create(HostTensor.fromValues("float64", [n / 4, 4], Array.from({ length: n }, (_, i) => i / 8)), "c")) as tf.Tensor;
    expect(gpuSide().tensorMap.get(c.dataId).resource).toBeDefined();
    expect(gpuSide().tensorMap.get(c.dataId).values ?? null).toBeNull();
    expect(c.shape).toEqual([n / 4, 4]);
    expect(Array.from(await c.data())).toEqual(Array.from({ length: n }, (_, i) => i / 8));
    const small = (await webgpuBackend().create(HostTensor.fromValues("int64", [], [41]), "step")) as tf.Tensor;
    expect(small.dataSync()[0]).toBe(41); // host values: dataSync works without a GPU read
    tf.dispose([b, f, c, small]);
  });

  it("round-trips float32 bit patterns through the GPU (NaN payloads, -0, denormals)", async () => {
    const raw = new Uint32Array([0x7fc00001, 0xffc12345, 0x80000000, 0x00000001, 0x7f800000, 0xff7fffff]);
    const v = soleVariable([0, 0, 0, 0, 0, 0], [6]);
    await webgpuBackend().assign(v, new HostTensor("float32", [6], new Uint8Array(raw.buffer)), "w");
    const { bytes } = await collect(webgpuBackend().toSource(v), 8);
    expect(bits(new Float32Array(bytes.buffer))).toEqual(Array.from(raw));
    v.dispose();
  });

  it("treats tensors of other tfjs backends as core's CPU backend does", async () => {
    await import("@tensorflow/tfjs-backend-cpu");
    await tf.setBackend("cpu");
    try {
      const t = tf.tensor([1.5, 2.5], [2]);
      expect(gpuSide().tensorMap.has(t.dataId)).toBe(false);
      const { bytes } = await collect(webgpuBackend().toSource(t), 4);
      expect(Array.from(new Float32Array(bytes.buffer))).toEqual([1.5, 2.5]);
      const v = tf.variable(tf.zeros([2]));
      await webgpuBackend().assign(v, HostTensor.fromValues("float32", [2], [3, 4]), "v");
      expect(Array.from(v.dataSync())).toEqual([3, 4]);
      tf.dispose([t, v]);
    } finally {
      await tf.setBackend("webgpu");
    }
  });
});
