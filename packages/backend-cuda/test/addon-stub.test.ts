import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CorruptCheckpointError, Fabric, MemoryIO, NodeFileIO } from "@savepoint/core";
import { runBackendConformance } from "@savepoint/core/testing";
import { afterAll, describe, expect, it } from "vitest";
import { CudaBackend } from "../src/cuda-backend.js";
import type { CudaNative } from "../src/native/cuda-native.js";
import type { CudaTensor } from "../src/tensor/cuda-tensor.js";
import { turnsDuring } from "./helpers/event-loop.js";
import { buildStubAddon } from "./helpers/stub-addon.js";

// The addon's own C++ linked against a fake CUDA runtime (host memory, one worker thread per
// stream): everything but the GPU itself is real, including host callbacks on a foreign thread
// settling promises on the JS thread.
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const CI = process.env.CI === "true" || process.env.CI === "1";
const stub = buildStubAddon();

if ("reason" in stub) {
  if (CI) it("the stub-linked addon builds", () => expect.fail(stub.reason));
  else it.skip(`skipped: the addon could not be built against the fake CUDA runtime: ${stub.reason}`, () => {});
} else {
  const native: CudaNative = stub.native;
  const work = mkdtempSync(join(tmpdir(), "savepoint-cuda-stub-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  runBackendConformance({
    name: "cuda (the addon's C++ over a fake CUDA runtime)",
    backend: () => new CudaBackend(native, { stagingBufferBytes: 4096 }),
    dtypes: ["float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "bool"],
    tensor: (d, shape, values) => new CudaBackend(native).fromValues(d, shape, values),
    variable: (d, shape, values) => new CudaBackend(native).fromValues(d, shape, values),
    values: async (t) => Array.from(await (t as CudaTensor).data(), Number),
  });

  describe("the addon over a fake CUDA runtime", () => {
    const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);

    it("saves through pinned buffers and loads in place, across odd buffer boundaries", async () => {
      const cuda = new CudaBackend(native, { stagingBuffers: 3, stagingBufferBytes: 5000 });
      const data = bytes(200_003, 1);
      const fabric = new Fabric({ backend: cuda, io: new NodeFileIO(), chunkBytes: 1 << 16 });
      await fabric.save(join(work, "a.ckpt"), { a: cuda.fromHost(data, "uint8", [data.length]) });
      const target = { a: cuda.empty("uint8", [data.length]) };
      const address = target.a.address;
      await fabric.load(join(work, "a.ckpt"), target);
      expect(target.a.address).toBe(address);
      expect(Buffer.from(await target.a.toHost()).equals(Buffer.from(data))).toBe(true);
      expect(Buffer.from(target.a.toHostSync()).equals(Buffer.from(data))).toBe(true);
      cuda.releaseBuffers();
    });

    it("a damaged checkpoint leaves the target as it was", async () => {
      const cuda = new CudaBackend(native, { stagingBufferBytes: 4096 });
      const io = new MemoryIO();
      const fabric = new Fabric({ backend: cuda, io });
      const data = bytes(100_000, 2);
      await fabric.save("d.pt", { w: cuda.fromHost(data, "uint8", [data.length]) });
      const file = io.files.get("d.pt")!;
      file[Buffer.from(file).indexOf(Buffer.from(data.subarray(-256))) + 3]! ^= 0xff;
      const before = bytes(100_000, 9);
      const target = { w: cuda.fromHost(before, "uint8", [before.length]) };
      await expect(fabric.load("d.pt", target)).rejects.toBeInstanceOf(CorruptCheckpointError);
      expect(Buffer.from(target.w.toHostSync()).equals(Buffer.from(before))).toBe(true);
    });

    it("keeps the event loop free while copies run on CUDA's side", async () => {
      const cuda = new CudaBackend(native, { stagingBufferBytes: 4096 });
      const t = cuda.fromHost(bytes(200 * 4096, 3), "uint8", [200 * 4096]);
      let chunks = 0;
      const turns = await turnsDuring(async () => {
        for await (const c of cuda.toSource(t).chunks(4096)) chunks += c.byteLength > 0 ? 1 : 0;
      });
      expect(chunks).toBe(200); // each ~200 µs on the fake device's worker threads
      expect(turns).toBeGreaterThan(2 * chunks);
      t.dispose();
    });
  });

  describe("the addon over a fake CUDA runtime, in a fresh process", () => {
    const dist = join(root, "dist", "index.cjs");
    const node = (script: string, env: Record<string, string>) =>
      spawnSync(process.execPath, ["-e", script], { encoding: "utf8", timeout: 60_000, env: { ...process.env, SAVEPOINT_CUDA_ADDON: stub.path, ...env } });

    it.runIf(existsSync(dist) || CI)("reports cudaGetDeviceCount's failure in CUDA's words, with the count initialised", () => {
      const r = node(`const m = require(${JSON.stringify(dist)}); console.log(JSON.stringify(m.cudaStatus()))`, { SAVEPOINT_FAKE_CUDA_DEVICES: "0" });
      expect(r.status).toBe(0);
      const status = JSON.parse(r.stdout) as { available: boolean; deviceCount: number; reason: string };
      expect(status.available).toBe(false);
      expect(status.deviceCount).toBe(0);
      expect(status.reason).toBe(
        'unavailable: cudaGetDeviceCount returned cudaErrorNoDevice ("no CUDA-capable device is detected"): the driver sees no GPU. Check CUDA_VISIBLE_DEVICES and that the GPU is attached (nvidia-smi)',
      );
    });

    it.runIf(existsSync(dist) || CI)("a copy failing on the device rejects with CUDA's error; the process then exits by itself", () => {
      const script = `
        const { Fabric, MemoryIO } = require("@savepoint/core");
        const m = require(${JSON.stringify(dist)});
        (async () => {
          const cuda = m.cudaBackend({ stagingBufferBytes: 4096 });
          const w = cuda.fromHost(new Uint8Array(40000).fill(5), "uint8", [40000]);
          const fabric = new Fabric({ backend: cuda, io: new MemoryIO() });
          const error = await fabric.save("w.pt", { w }).catch((e) => e);
          console.log(JSON.stringify({ name: error && error.name, code: error && error.code, message: error && error.message }));
          await fabric.save("w.pt", { w });
          console.log("second save ok");
        })();`;
      const r = node(script, { SAVEPOINT_FAKE_CUDA_FAIL_COPY: "3" });
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      const [first, second] = r.stdout.trim().split("\n");
      const error = JSON.parse(first!) as { name: string; code: string; message: string };
      expect(error).toMatchObject({ name: "CudaError", code: "cudaErrorIllegalAddress" });
      expect(error.message).toMatch(/^\[savepoint\] copying a uint8 tensor .*asynchronous copy failed: cudaErrorIllegalAddress \(an illegal memory access was encountered\)/);
      expect(second).toBe("second save ok");
    });

    it.runIf(existsSync(dist) || CI)("gpu-bench.mjs runs end to end over it", () => {
      const out = execFileSync(process.execPath, [join(root, "scripts", "gpu-bench.mjs"), "--bytes", "32MiB", "--tensors", "4", "--dir", work, "--no-targets", "--warm-reads"], {
        encoding: "utf8",
        env: { ...process.env, SAVEPOINT_CUDA_ADDON: stub.path },
        timeout: 60_000,
      });
      expect(out).toContain("device: fake CUDA device");
      expect(out).toContain("loaded contents match what was saved");
    });
  });
}
