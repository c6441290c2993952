import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { CorruptCheckpointError, Fabric, MemoryIO, NodeFileIO } from "@savepoint/core";
import { runBackendConformance } from "@savepoint/core/testing";
import { afterAll, describe, expect, it } from "vitest";
import { cudaStatus } from "../../src/availability.js";
import { cudaBackend } from "../../src/cuda-backend.js";
import { CudaError } from "../../src/errors.js";
import { CudaTensor } from "../../src/tensor/cuda-tensor.js";
import { turnsDuring } from "../helpers/event-loop.js";

// Runs only where a GPU is usable. scripts/gpu-check.sh sets SAVEPOINT_REQUIRE_GPU=1, which turns
// the skip into a failure, so a GPU run can never pass by skipping.
const status = cudaStatus();
const required = process.env.SAVEPOINT_REQUIRE_GPU === "1";

if (!status.available) {
  if (required) {
    it("needs a usable GPU (SAVEPOINT_REQUIRE_GPU=1)", () => expect.fail(`CUDA is ${status.reason}`));
  } else {
    it.skip(`GPU tests skipped, no usable GPU here: ${status.reason}`, () => {});
  }
} else {
  runBackendConformance({
    name: `cuda (${status.deviceCount} device(s), CUDA runtime ${status.runtimeVersion}, driver ${status.driverVersion})`,
    backend: () => cudaBackend(),
    dtypes: ["float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "bool"],
    tensor: (d, shape, values) => CudaTensor.fromValues(d, shape, values),
    variable: (d, shape, values) => CudaTensor.fromValues(d, shape, values),
    values: async (t) => Array.from(await (t as CudaTensor).data(), Number),
  });

  describe("CudaBackend on the GPU", () => {
    const dir = mkdtempSync(join(tmpdir(), "savepoint-cuda-gpu-"));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    const big = (mib: number, seed: number) => {
      const host = new Uint8Array(mib << 20);
      for (let i = 0; i < host.length; i += 4096) host[i] = (i / 4096 + seed) & 0xff;
      host[host.length - 1] = seed;
      return host;
    };

    it("round-trips 96 MiB through a file, in place, across staging-buffer boundaries", async () => {
      const cuda = cudaBackend({ stagingBuffers: 3, stagingBufferBytes: 5 << 20 }); // odd sizes on purpose
      const a = big(64, 1);
      const b = big(32, 2).subarray(0, (32 << 20) - 4);
      const state = { a: cuda.fromHost(a, "uint8", [a.length]), b: cuda.fromHost(b, "float32", [b.length / 4]) };
      const fabric = new Fabric({ backend: cuda, io: new NodeFileIO() });
      await fabric.save(join(dir, "big.ckpt"), state);
      const target = { a: cuda.empty("uint8", [a.length]), b: cuda.empty("float32", [b.length / 4]) };
      const addresses = [target.a.address, target.b.address];
      await fabric.load(join(dir, "big.ckpt"), target);
      expect([target.a.address, target.b.address]).toEqual(addresses);
      expect(crc32(await target.a.toHost())).toBe(crc32(a));
      expect(crc32(target.b.toHostSync())).toBe(crc32(b));
      for (const t of [...Object.values(state), ...Object.values(target)]) t.dispose();
      cuda.releaseBuffers();
    });

    it("a damaged file leaves the target as it was", async () => {
      const cuda = cudaBackend({ stagingBufferBytes: 1 << 20 });
      const io = new MemoryIO();
      const fabric = new Fabric({ backend: cuda, io });
      const data = big(8, 3);
      await fabric.save("d.pt", { w: cuda.fromHost(data, "uint8", [data.length]) });
      const file = io.files.get("d.pt")!;
      const at = Buffer.from(file).indexOf(Buffer.from(data.subarray(-4096)));
      file[at + 100]! ^= 0xff;
      const before = big(8, 9);
      const target = { w: cuda.fromHost(before, "uint8", [before.length]) };
      await expect(fabric.load("d.pt", target)).rejects.toBeInstanceOf(CorruptCheckpointError);
      expect(crc32(target.w.toHostSync())).toBe(crc32(before));
    });

    it("copies without blocking the event loop", async () => {
      const cuda = cudaBackend();
      const t = cuda.fromHost(big(256, 4), "uint8", [256 << 20]);
      let chunks = 0;
      const turns = await turnsDuring(async () => {
        for await (const c of cuda.toSource(t).chunks(8 << 20)) chunks += c.byteLength > 0 ? 1 : 0;
      });
      expect(chunks).toBe(32);
      expect(turns).toBeGreaterThan(chunks); // a thread blocked on each copy allows about one turn per chunk
      t.dispose();
    });

    it("reports out-of-memory with CUDA's error name and a fix", () => {
      let error: unknown;
      try {
        CudaTensor.empty("float32", [2 ** 40]); // 4 TiB
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(CudaError);
      expect((error as CudaError).code).toBe("cudaErrorMemoryAllocation");
      expect((error as Error).message).toMatch(/Free device memory/);
    });

    it("disposing during a save defers the free until the save is done", async () => {
      const cuda = cudaBackend();
      const data = big(64, 5);
      const w = cuda.fromHost(data, "uint8", [data.length]);
      const io = new MemoryIO();
      const saving = new Fabric({ backend: cuda, io }).save("w.pt", { w });
      await new Promise((r) => setImmediate(r));
      w.dispose();
      await saving;
      const raw = (await new Fabric({ backend: cuda, io }).load("w.pt")) as Record<string, { bytes(): Promise<Uint8Array> }>;
      expect(crc32(await raw.w!.bytes())).toBe(crc32(data));
    });
  });
}
