import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CorruptCheckpointError,
  Fabric,
  HostTensor,
  InvalidArgumentError,
  LazyTensor,
  MemoryIO,
  NodeFileIO,
  StrictLoadError,
  type DType,
} from "@savepoint/core";
import { decodeCheckpointBytes, runBackendConformance } from "@savepoint/core/testing";
import { afterAll, describe, expect, it } from "vitest";
import { CudaBackend } from "../src/cuda-backend.js";
import { CudaError } from "../src/errors.js";
import { CudaTensor } from "../src/tensor/cuda-tensor.js";
import { EmulatedCuda } from "./helpers/emulated-cuda.mjs";
import { pattern } from "./helpers/manual-copies.js";

// Everything above the addon, run against host memory standing in for the GPU (the real suite
// runs on a GPU in scripts/gpu-check.sh).
const conformanceDevice = new EmulatedCuda();
runBackendConformance({
  name: "cuda (host-memory emulation of the addon)",
  backend: () => new CudaBackend(conformanceDevice, { stagingBufferBytes: 4096 }),
  // uint8 is left out only because the suite's sample values are negative; it is covered below.
  dtypes: ["float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "bool"],
  tensor: (d, shape, values) => new CudaBackend(conformanceDevice).fromValues(d, shape, values),
  variable: (d, shape, values) => new CudaBackend(conformanceDevice).fromValues(d, shape, values),
  values: async (t) => Array.from(await (t as CudaTensor).data(), Number),
});

const floats = (n: number, seed = 0) => Float32Array.from({ length: n }, (_, i) => i * 0.5 + seed);

describe("CudaBackend on an emulated device", () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("saves a multi-chunk tensor to disk with device→host copies queued ahead of the writes", async () => {
    const emu = new EmulatedCuda();
    const cuda = new CudaBackend(emu, { stagingBuffers: 4, stagingBufferBytes: 4096 });
    const values = floats(64 * 1024);
    const w = cuda.fromHost(values, "float32", [256, 256]);
    const dir = mkdtempSync(join(tmpdir(), "savepoint-cuda-"));
    dirs.push(dir);
    const fabric = new Fabric({ backend: cuda, io: new NodeFileIO(), chunkBytes: 1 << 20 });
    await fabric.save(join(dir, "w.ckpt"), { w, step: 3 });
    // 256 KiB through 4 KiB buffers: 64 copies, up to four queued at once.
    expect(emu.log.filter((l) => l.startsWith("d2h"))).toHaveLength(64);
    expect(emu.maxQueued).toBe(4);
    expect(emu.pinned.size).toBe(4);

    const raw = await fabric.load(join(dir, "w.ckpt"));
    expect(raw.step).toBe(3);
    expect(new Float32Array((await (raw.w as HostTensor).bytes()).slice().buffer)).toEqual(values);

    const w2 = cuda.fromHost(new Float32Array(values.length), "float32", [256, 256]);
    const target = { w: w2, step: 0 };
    await fabric.load(join(dir, "w.ckpt"), target);
    expect(target.w).toBe(w2); // loaded in place, not replaced
    expect(await w2.data()).toEqual(values);
    expect(target.step).toBe(3);
  });

  it("loads in place: same tensor, same device address", async () => {
    const emu = new EmulatedCuda();
    const cuda = new CudaBackend(emu, { stagingBufferBytes: 4096 });
    const w = cuda.fromHost(new Float32Array(5000), "float32", [5000]);
    const address = w.address;
    await cuda.assign(w, new HostTensor("float32", [5000], new Uint8Array(floats(5000, 1).buffer)), "w");
    expect(w.address).toBe(address);
    expect(new Float32Array(emu.peek(address).slice().buffer)).toEqual(floats(5000, 1));
  });

  it("a damaged checkpoint leaves the target untouched (atomic assign)", async () => {
    const emu = new EmulatedCuda();
    const cuda = new CudaBackend(emu, { stagingBufferBytes: 4096 });
    const before = floats(16 * 1024);
    const io = new MemoryIO();
    const fabric = new Fabric({ backend: cuda, io });
    await fabric.save("ckpt.pt", { w: cuda.fromHost(floats(16 * 1024, 7), "float32", [16 * 1024]) });
    const file = io.files.get("ckpt.pt")!;
    // Flip a byte near the end of the tensor's record: the CRC check fails only at the last chunk,
    // after most chunks have reached the device.
    const at = Buffer.from(file).indexOf(Buffer.from(floats(16 * 1024, 7).buffer).subarray(-64));
    expect(at).toBeGreaterThan(0);
    file[at + 10]! ^= 0xff;
    const target = { w: cuda.fromHost(before, "float32", [16 * 1024]) };
    await expect(fabric.load("ckpt.pt", target)).rejects.toBeInstanceOf(CorruptCheckpointError);
    expect(await target.w.data()).toEqual(before);
    expect(emu.allocations.size).toBe(2); // the scratch copy was freed
  });

  it("with atomicAssign: false, loads straight into the target (no scratch copy)", async () => {
    const emu = new EmulatedCuda();
    const cuda = new CudaBackend(emu, { stagingBufferBytes: 4096, atomicAssign: false });
    const w = cuda.fromHost(new Float32Array(4096), "float32", [4096]);
    const source = new LazyTensor("float32", [4096], async (o, n, into) => (into ?? new Uint8Array(n)).fill(1, 0, n), "mem:w");
    await cuda.assign(w, source, "w");
    expect(emu.log.some((l) => l.startsWith("d2d"))).toBe(false);
    const atomic = new CudaBackend(emu, { stagingBufferBytes: 4096 });
    await atomic.assign(w, source, "w");
    expect(emu.log.filter((l) => l.startsWith("d2d"))).toEqual(["d2d 16384"]);
  });

  it("converts the checkpoint's dtype to the tensor's, refusing values that do not fit before touching it", async () => {
    const emu = new EmulatedCuda();
    const cuda = new CudaBackend(emu);
    const i = cuda.fromValues("int32", [3], [1, 2, 3]);
    await cuda.assign(i, HostTensor.fromValues("int64", [3], [7n, -8n, 9n]), "i");
    expect(Array.from(await i.data(), Number)).toEqual([7, -8, 9]);
    await expect(cuda.assign(i, HostTensor.fromValues("int64", [3], [0n, 2n ** 40n, 0n]), "i")).rejects.toBeInstanceOf(StrictLoadError);
    expect(Array.from(await i.data(), Number)).toEqual([7, -8, 9]);
    await expect(cuda.assign(i, HostTensor.fromValues("int32", [4], [1, 2, 3, 4]), "layer.i")).rejects.toThrow(/size mismatch for layer\.i/);
  });

  it("creates tensors on its device for plain tensors in the state", async () => {
    const emu = new EmulatedCuda({ devices: 2 });
    const cuda = new CudaBackend(emu, { device: 1, stagingBufferBytes: 4096 });
    const t = await cuda.create(HostTensor.fromValues("float16", [2, 3], [1, 2, 3, 4, 5, 6]), "t");
    expect(t).toBeInstanceOf(CudaTensor);
    expect(t.device).toBe(1);
    expect(t.dtype).toBe("float16");
    expect(Array.from(await t.data(), Number)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(cuda.name).toBe("cuda:1");
    // A tensor on device 0 is still saved, through device 0's own staging buffers.
    const other = new CudaBackend(emu).fromValues("int8", [2], [-1, 1]);
    const io = new MemoryIO();
    await new Fabric({ backend: cuda, io }).save("x.pt", { other });
    const decoded = (await decodeCheckpointBytes(io.files.get("x.pt")!)) as Record<string, HostTensor>;
    expect(Array.from(await decoded.other!.data(), Number)).toEqual([-1, 1]);
  });

  it("dispose() during a save lets the save finish, then frees the memory", async () => {
    const emu = new EmulatedCuda();
    const cuda = new CudaBackend(emu, { stagingBufferBytes: 4096 });
    const w = cuda.fromHost(floats(32 * 1024), "float32", [32 * 1024]);
    const address = w.address;
    const io = new MemoryIO();
    const saving = new Fabric({ backend: cuda, io }).save("w.pt", { w });
    await new Promise((r) => setTimeout(r, 1));
    w.dispose();
    expect(w.isDisposed).toBe(true);
    await saving;
    expect(emu.allocations.has(address)).toBe(false);
    const decoded = (await decodeCheckpointBytes(io.files.get("w.pt")!)) as Record<string, HostTensor>;
    expect(new Float32Array(decoded.w!.raw.slice().buffer)).toEqual(floats(32 * 1024));
    // Afterwards the tensor is gone for good, with a message saying what to do.
    await expect(new Fabric({ backend: cuda, io }).save("w2.pt", { w })).rejects.toThrow(/was disposed.*Keep tensors alive/);
    expect(() => w.address).toThrow(InvalidArgumentError);
    w.dispose(); // twice is harmless
  });

  it("reports a failed copy with CUDA's error name, and keeps working afterwards", async () => {
    const emu = new EmulatedCuda();
    const cuda = new CudaBackend(emu, { stagingBufferBytes: 4096 });
    const w = cuda.fromHost(pattern(20000), "uint8", [20000]);
    emu.failNext = { kind: "d2h", code: "cudaErrorIllegalAddress" };
    const io = new MemoryIO();
    const error = await new Fabric({ backend: cuda, io }).save("w.pt", { w }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CudaError);
    expect((error as CudaError).code).toBe("cudaErrorIllegalAddress");
    expect((error as CudaError).message).toMatch(/^\[savepoint\] copying a uint8 tensor of shape \[20000\] on cuda:0 to the host: .*cudaErrorIllegalAddress/);
    await new Fabric({ backend: cuda, io }).save("w.pt", { w });
    expect(Array.from(await w.toHost())).toEqual(Array.from(pattern(20000)));
  });

  it("reuses its pinned buffers across saves and frees them on releaseBuffers()", async () => {
    const emu = new EmulatedCuda();
    const cuda = new CudaBackend(emu, { stagingBuffers: 2, stagingBufferBytes: 4096 });
    const io = new MemoryIO();
    const fabric = new Fabric({ backend: cuda, io });
    const state = { a: cuda.fromHost(pattern(50000), "uint8", [50000]), b: cuda.fromHost(pattern(9000, 3), "uint8", [9000]) };
    for (let i = 0; i < 3; i++) await fabric.save(`s${i}.pt`, state);
    expect(emu.pinned.size).toBe(2);
    expect(emu.streams.size).toBe(2);
    cuda.releaseBuffers();
    expect(emu.pinned.size).toBe(0);
    expect(emu.streams.size).toBe(0);
    await fabric.save("again.pt", state); // made again on demand
    expect(emu.pinned.size).toBe(2);
  });

  it("recognises only its own tensors", () => {
    const emu = new EmulatedCuda();
    const cuda = new CudaBackend(emu);
    const t = cuda.fromValues("float32", [1], [1]);
    expect(cuda.isTensor(t)).toBe(true);
    expect(cuda.isAssignable(t)).toBe(true);
    expect(new CudaBackend(new EmulatedCuda()).isTensor(t)).toBe(false);
    expect(cuda.isTensor(new Float32Array(1))).toBe(false);
    expect(() => cuda.describe({})).toThrow(/expected a CudaTensor, got an instance of Object/);
    t.dispose();
    expect(cuda.isAssignable(t)).toBe(false);
  });

  it("validates its options", () => {
    const emu = new EmulatedCuda();
    expect(() => new CudaBackend(emu, { device: -1 })).toThrow(InvalidArgumentError);
    expect(() => new CudaBackend(emu, { stagingBuffers: 0 })).toThrow(/stagingBuffers/);
    expect(() => new CudaBackend(emu, { stagingBufferBytes: 100 })).toThrow(/stagingBufferBytes/);
    expect(() => new CudaBackend(emu).fromHost(new Float32Array(3), "float32", [2, 2])).toThrow(/needs 16 bytes, got 12/);
  });

  it("handles empty tensors without device copies", async () => {
    const emu = new EmulatedCuda();
    const cuda = new CudaBackend(emu);
    const e = cuda.empty("float32" as DType, [0, 4]);
    const io = new MemoryIO();
    const fabric = new Fabric({ backend: cuda, io });
    await fabric.save("e.pt", { e });
    const target = { e: cuda.empty("float32", [0, 4]) };
    await fabric.load("e.pt", target);
    expect(target.e.shape).toEqual([0, 4]);
    expect(await target.e.toHost()).toEqual(new Uint8Array(0));
  });
});
