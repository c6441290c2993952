/**
 * Shared settings of the fuzz targets. The CI run is short and deterministic; a longer run is one
 * environment variable away (see README.md):
 *
 *   FUZZ_RUNS=200000 FUZZ_SEED=random npx vitest run packages/core/test/fuzz
 *
 * FUZZ_RUNS  inputs per property (default: each target's CI count)
 * FUZZ_SEED  a number, or "random" (default: a fixed seed, so CI is reproducible)
 * FUZZ_TIME  seconds a property may run before it stops early and passes (default 20 in the short
 *            run, none when FUZZ_RUNS is set), so a slow machine cannot blow the CI budget
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { CorruptCheckpointError, SavepointError } from "../../src/errors.js";

const here = dirname(fileURLToPath(import.meta.url));
const env = process.env;

const seed = env.FUZZ_SEED === "random" ? (Date.now() ^ (process.pid << 16)) | 0 : Number(env.FUZZ_SEED ?? 20261128);
const long = env.FUZZ_RUNS !== undefined;
const timeLimitMs = env.FUZZ_TIME !== undefined ? Number(env.FUZZ_TIME) * 1000 : long ? undefined : 20_000;

/** vitest's limit per property: generous for the short run, none to speak of for a long one. */
export const TIMEOUT_MS = long ? 7 * 24 * 3600_000 : 120_000;

/** fast-check parameters for a property whose short CI run makes `ciRuns` inputs. */
export function params<T>(ciRuns: number): fc.Parameters<T> {
  return {
    numRuns: long ? Number(env.FUZZ_RUNS) : ciRuns,
    seed,
    interruptAfterTimeLimit: timeLimitMs,
    // On failure fast-check prints the seed and path that replay it (FUZZ_SEED=… plus `path`).
    verbose: 1,
  };
}

/** The committed seed files of one target (test/fuzz/corpus/<kind>/). */
export function corpus(kind: string): Uint8Array[] {
  const dir = join(here, "corpus", kind);
  return readdirSync(dir)
    .sort()
    .map((f) => new Uint8Array(readFileSync(join(dir, f))));
}

/** Values that make length and offset fields interesting: zero, ends, sign bits, off-by-ones. */
const INTERESTING_U32 = [0, 1, 2, 7, 8, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

type Edit =
  | { kind: "flip"; at: number; xor: number }
  | { kind: "u32"; at: number; value: number }
  | { kind: "insert"; at: number; bytes: Uint8Array }
  | { kind: "delete"; at: number; length: number }
  | { kind: "copy"; from: number; to: number; length: number }
  | { kind: "truncate"; at: number };

const edit: fc.Arbitrary<Edit> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("u32" as const), at: fc.nat(), value: fc.oneof(fc.constantFrom(...INTERESTING_U32), fc.nat()) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), length: fc.integer({ min: 1, max: 32 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("copy" as const), from: fc.nat(), to: fc.nat(), length: fc.integer({ min: 1, max: 64 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }) },
);

function apply(input: Uint8Array, edits: readonly Edit[]): Uint8Array {
  let b: Uint8Array = input.slice();
  for (const e of edits) {
    const n = b.length;
    if (n === 0) break;
    switch (e.kind) {
      case "flip":
        b[e.at % n]! ^= e.xor;
        break;
      case "u32": {
        const at = e.at % n;
        for (let i = 0; i < 4 && at + i < n; i++) b[at + i] = (e.value >>> (8 * i)) & 0xff;
        break;
      }
      case "insert": {
        const at = e.at % (n + 1);
        b = concat(b.subarray(0, at), e.bytes, b.subarray(at));
        break;
      }
      case "delete": {
        const at = e.at % n;
        b = concat(b.subarray(0, at), b.subarray(Math.min(n, at + e.length)));
        break;
      }
      case "copy": {
        const from = e.from % n;
        const piece = b.slice(from, Math.min(n, from + e.length));
        b.set(piece.subarray(0, Math.max(0, n - (e.to % n))), e.to % n);
        break;
      }
      case "truncate":
        b = b.slice(0, e.at % n);
        break;
    }
  }
  return b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Seed files with 1–8 random edits (flips, interesting 32-bit values, inserts, deletes, copies, cuts). */
export function mutated(seeds: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc.tuple(fc.constantFrom(...seeds), fc.array(edit, { minLength: 1, maxLength: 8 })).map(([s, edits]) => apply(s, edits));
}

/**
 * Runs `fn` on one input: it may return, or throw one of savepoint's own errors (which carry a
 * `[savepoint]` message); anything else (TypeError, RangeError: a crash or a stack overflow) and
 * any input taking over `ms` fails the property.
 */
export async function outcome<T>(fn: () => T | Promise<T>, ms = 1000): Promise<{ value: T } | { error: SavepointError }> {
  const t0 = performance.now();
  let result: { value: T } | { error: SavepointError };
  try {
    result = { value: await fn() };
  } catch (err) {
    if (!(err instanceof SavepointError) || !err.message.startsWith("[savepoint] ")) throw err;
    result = { error: err };
  }
  const took = performance.now() - t0;
  if (took > ms) throw new Error(`one input took ${took.toFixed(0)} ms (limit ${ms} ms)`);
  return result;
}

/** A ByteSource over bytes in memory, as the readers take them. */
export function memorySource(bytes: Uint8Array, name = "fuzz.bin") {
  return {
    name,
    size: bytes.length,
    async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
      if (offset < 0 || length < 0 || offset + length > bytes.length) {
        throw new CorruptCheckpointError(`${name} is truncated: bytes [${offset}, ${offset + length}) of ${bytes.length}.`, { subject: name });
      }
      const view = bytes.subarray(offset, offset + length);
      if (into) {
        into.set(view);
        return into;
      }
      return view.slice();
    },
    async close() {},
  };
}
