import { describe, expect, it } from "vitest";
import type { Backend } from "../backends/backend.js";
import type { DType } from "../dtype.js";
import { StrictLoadError } from "../errors.js";
import { Fabric } from "../fabric.js";
import { MemoryIO } from "../io/memory-io.js";
import { HostTensor } from "../tensor/stored-tensor.js";
import { encodeValues } from "../tensor/typed-arrays.js";
import { decodeCheckpointBytes } from "./back-door.js";

/** What {@link runBackendConformance} needs from a backend's test. */
export interface BackendConformanceOptions {
  name: string;
  backend(): Backend;
  /** dtypes the backend stores natively (e.g. float32, int32, bool). */
  dtypes: DType[];
  /** A new (immutable) tensor of the backend holding `values`. */
  tensor(dtype: DType, shape: number[], values: number[]): unknown;
  /** A new variable (assignable in place) holding `values`. */
  variable(dtype: DType, shape: number[], values: number[]): unknown;
  /** Back door: the values the backend holds for `tensor`, read without the Backend interface. */
  values(tensor: unknown): Promise<number[]>;
}

const SHAPE = [3, 5];
function valuesFor(dtype: DType, seed: number): number[] {
  return Array.from({ length: 15 }, (_, i) => (dtype === "bool" ? (i + seed) % 2 : dtype.startsWith("float") ? (i - 7) * 0.25 + seed : i - 7 + seed));
}

async function collect(chunks: AsyncIterable<Uint8Array>, limit: number): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of chunks) {
    expect(c.byteLength).toBeLessThanOrEqual(limit);
    parts.push(c.slice());
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

/**
 * The contract every `Backend` meets: it describes and streams its tensors as little-endian
 * row-major bytes in bounded chunks, assigns checkpoint bytes into variables in place (converting
 * dtypes it lacks), refuses shape mismatches without changing anything, and what it saves is read
 * back from the file's bytes by the format alone.
 */
export function runBackendConformance(options: BackendConformanceOptions): void {
  describe(`Backend conformance: ${options.name}`, () => {
    for (const dtype of options.dtypes) {
      it(`streams ${dtype} tensors as raw bytes in bounded chunks`, async () => {
        const b = options.backend();
        const values = valuesFor(dtype, 1);
        const t = options.tensor(dtype, SHAPE, values);
        expect(b.isTensor(t)).toBe(true);
        expect(b.describe(t)).toEqual({ dtype, shape: SHAPE });
        const src = b.toSource(t);
        expect(src.byteLength).toBe(encodeValues(dtype, values).byteLength);
        expect(await collect(src.chunks(8), 8)).toEqual(encodeValues(dtype, values));
      });

      it(`assigns ${dtype} checkpoint bytes into a variable in place`, async () => {
        const b = options.backend();
        const v = options.variable(dtype, SHAPE, valuesFor(dtype, 0));
        const next = valuesFor(dtype, 1);
        await b.assign(v, HostTensor.fromValues(dtype, SHAPE, next), "w");
        expect(await options.values(v)).toEqual(next);
        const created = await b.create(HostTensor.fromValues(dtype, SHAPE, next), "w");
        expect(await options.values(created)).toEqual(next);
      });
    }

    it("converts dtypes it does not store (float16, bfloat16, float64 → float32; int64 → int32)", async () => {
      const b = options.backend();
      const f = options.variable("float32", [4], [0, 0, 0, 0]);
      for (const d of ["float16", "bfloat16", "float64"] as DType[]) {
        await b.assign(f, HostTensor.fromValues(d, [4], [1.5, -2, 0.25, 8]), "f");
        expect(await options.values(f)).toEqual([1.5, -2, 0.25, 8]);
      }
      const i = options.variable("int32", [3], [0, 0, 0]);
      await b.assign(i, HostTensor.fromValues("int64", [3], [5, -6, 2147483647]), "i");
      expect(await options.values(i)).toEqual([5, -6, 2147483647]);
      await expect(b.assign(i, HostTensor.fromValues("int64", [3], [2 ** 40, 0, 0]), "i")).rejects.toBeInstanceOf(StrictLoadError);
      expect(await options.values(i)).toEqual([5, -6, 2147483647]);
    });

    it("refuses a shape mismatch and leaves the variable unchanged", async () => {
      const b = options.backend();
      const v = options.variable("float32", SHAPE, valuesFor("float32", 0));
      await expect(b.assign(v, HostTensor.fromValues("float32", [5, 3], valuesFor("float32", 1)), "layer.kernel")).rejects.toThrow(/layer\.kernel/);
      expect(await options.values(v)).toEqual(valuesFor("float32", 0));
    });

    it("saves tensors whose file bytes decode, without the backend, to the same values", async () => {
      const io = new MemoryIO();
      const fabric = new Fabric({ backend: options.backend(), io });
      const state: Record<string, unknown> = {};
      for (const d of options.dtypes) state[d] = options.tensor(d, SHAPE, valuesFor(d, 2));
      await fabric.save("ckpt.pt", state);
      const decoded = (await decodeCheckpointBytes(io.files.get("ckpt.pt")!)) as Record<string, HostTensor>;
      for (const d of options.dtypes) {
        expect(decoded[d]!.dtype).toBe(d);
        expect(decoded[d]!.raw).toEqual(encodeValues(d, valuesFor(d, 2)));
      }
      const target: Record<string, unknown> = {};
      for (const d of options.dtypes) target[d] = options.variable(d, SHAPE, valuesFor(d, 0));
      await fabric.load("ckpt.pt", target);
      for (const d of options.dtypes) expect(await options.values(target[d])).toEqual(valuesFor(d, 2));
    });
  });
}
