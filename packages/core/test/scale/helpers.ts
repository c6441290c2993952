import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { DEFAULT_CHUNK_BYTES, TENSOR_SOURCE, type TensorSource } from "../../src/tensor/tensor-source.js";

export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;

/** A fresh folder on the local disk (under the OS temp folder), removed by the returned function. */
export function scratchDir(tag: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), `savepoint-scale-${tag}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The last `TAIL_FLOATS` values of every sparse tensor: 1, 2, 3, ... */
export const TAIL_FLOATS = 1024;

/**
 * A float32 tensor of `byteLength` bytes that holds no memory: it streams one shared chunk of
 * zeros, except that its last {@link TAIL_FLOATS} values are 1, 2, 3, ..., so reading the end of
 * the file back proves the offsets past 4 GiB are right.
 */
export function sparseTensor(byteLength: number): TensorSource {
  if (byteLength % 4 !== 0 || byteLength < TAIL_FLOATS * 4) throw new Error("sparseTensor: byteLength must be a multiple of 4 and hold the tail");
  const tail = new Float32Array(TAIL_FLOATS).map((_, i) => i + 1);
  const tailBytes = new Uint8Array(tail.buffer);
  return {
    [TENSOR_SOURCE]: true,
    dtype: "float32",
    shape: [byteLength / 4],
    byteLength,
    async *chunks(chunkBytes = DEFAULT_CHUNK_BYTES) {
      const zeros = new Uint8Array(chunkBytes);
      const tailStart = byteLength - tailBytes.byteLength;
      for (let off = 0; off < byteLength; off += chunkBytes) {
        const end = Math.min(byteLength, off + chunkBytes);
        if (end <= tailStart) {
          yield zeros.subarray(0, end - off);
          continue;
        }
        // The chunk that holds (part of) the tail: zeros, then the tail bytes.
        const chunk = new Uint8Array(end - off);
        const from = Math.max(tailStart, off);
        chunk.set(tailBytes.subarray(from - tailStart, end - tailStart), from - off);
        yield chunk;
      }
    },
  } as TensorSource;
}

/** The float32 values 1..TAIL_FLOATS, as bytes, to compare the end of a tensor with. */
export function expectedTail(): Uint8Array {
  return new Uint8Array(new Float32Array(TAIL_FLOATS).map((_, i) => i + 1).buffer);
}

/**
 * Records every allocation of more than `limit` bytes made through the global buffer constructors
 * (ArrayBuffer, typed arrays, Buffer.alloc*, slice()) while installed: savepoint's own code uses
 * nothing else, so this sees each buffer it makes. `stop()` restores the originals.
 */
export function trackBigAllocations(limit: number): { readonly big: string[]; stop(): void } {
  const big: string[] = [];
  const g = globalThis as unknown as Record<string, unknown>;
  const restore: (() => void)[] = [];
  const note = (what: string, bytes: number) => {
    if (bytes > limit) big.push(`${what} of ${bytes} bytes\n${new Error().stack?.split("\n").slice(2, 8).join("\n")}`);
  };
  const names = ["ArrayBuffer", "SharedArrayBuffer", "Uint8Array", "Int8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array", "Int32Array", "Uint32Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array"];
  for (const name of names) {
    const C = g[name] as (new (...a: unknown[]) => unknown) & { BYTES_PER_ELEMENT?: number };
    if (typeof C !== "function") continue;
    g[name] = new Proxy(C, {
      construct(target, args, newTarget) {
        const a0 = args[0];
        const per = target.BYTES_PER_ELEMENT ?? 1;
        if (typeof a0 === "number") note(`new ${name}`, a0 * per);
        else if (a0 && typeof a0 === "object" && !(a0 instanceof ArrayBuffer) && !(typeof SharedArrayBuffer !== "undefined" && a0 instanceof SharedArrayBuffer) && typeof (a0 as { length?: unknown }).length === "number") {
          note(`new ${name}(array-like)`, (a0 as { length: number }).length * per);
        }
        return Reflect.construct(target, args, newTarget);
      },
    });
    restore.push(() => (g[name] = C));
  }
  const B = Buffer as unknown as Record<string, (...a: unknown[]) => unknown>;
  for (const m of ["alloc", "allocUnsafe", "allocUnsafeSlow"]) {
    const f = B[m]!;
    B[m] = function (this: unknown, ...a: unknown[]) {
      if (typeof a[0] === "number") note(`Buffer.${m}`, a[0]);
      return f.apply(this, a);
    };
    restore.push(() => (B[m] = f));
  }
  const TypedArrayProto = Object.getPrototypeOf(Uint8Array.prototype) as { slice: (s?: number, e?: number) => ArrayBufferView };
  const slice = TypedArrayProto.slice;
  TypedArrayProto.slice = function (this: ArrayBufferView & { length: number }, s?: number, e?: number) {
    const out = slice.call(this, s, e);
    note("TypedArray.slice", out.byteLength);
    return out;
  };
  restore.push(() => (TypedArrayProto.slice = slice));
  const abSlice = ArrayBuffer.prototype.slice;
  ArrayBuffer.prototype.slice = function (this: ArrayBuffer, s?: number, e?: number) {
    const out = abSlice.call(this, s, e);
    note("ArrayBuffer.slice", out.byteLength);
    return out;
  };
  restore.push(() => (ArrayBuffer.prototype.slice = abSlice));
  return {
    big,
    stop: () => {
      for (const r of restore.reverse()) r();
    },
  };
}

const here = dirname(fileURLToPath(import.meta.url));

/**
 * Bundles a child script of test/scale/children (TypeScript importing src/) into one ESM file that
 * plain `node` runs, inside the repository so tfjs resolves from its node_modules.
 */
export async function bundleChild(name: string): Promise<string> {
  const { build } = await import("esbuild");
  const out = resolve(here, "../../.tmp/scale");
  mkdirSync(out, { recursive: true });
  const outfile = join(out, `${name}-${process.pid}.mjs`);
  await build({ entryPoints: [resolve(here, "children", `${name}.ts`)], bundle: true, platform: "node", format: "esm", target: "node20", outfile, external: ["@tensorflow/*", "ioredis"], logLevel: "error" });
  return outfile;
}
