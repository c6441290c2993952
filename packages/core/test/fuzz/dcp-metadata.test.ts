/**
 * Fuzzing the DCP `.metadata` reader: damaged real `.metadata` pickles (Lightning FSDP2 and
 * Megatron-Core) and generated metadata with hostile fields (storage ranges past the file, paths
 * with `..` or absolute, absurd sizes, chunks that overlap, leave gaps or reach past the tensor)
 * either read into metadata whose chunks cover each tensor exactly and whose files lie inside the
 * folder, or fail with savepoint's errors. Generated checkpoints are also loaded whole (the DCP
 * format over in-memory files): a load that succeeds yields tensors whose bytes all come from the
 * files, and an undamaged one gives back exactly what was written.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { itemSize, torchDTypeName, type DType } from "../../src/dtype.js";
import { CheckpointNotFoundError, CorruptCheckpointError, UnsafeCheckpointError, UnsupportedFormatError, type SavepointError } from "../../src/errors.js";
import { dcpFormat } from "../../src/formats/dcp/dcp-format.js";
import type { DcpMetadata } from "../../src/formats/dcp/dcp-metadata.js";
import { readDcpMetadata } from "../../src/formats/dcp/read-dcp-metadata.js";
import { markNewObj } from "../../src/formats/pickle/newobj-mark.js";
import { pickle } from "../../src/formats/pickle/pickler.js";
import { resolveInside } from "../../src/io/paths.js";
import { isTensorSource, numel, type TensorSource } from "../../src/tensor/tensor-source.js";
import { asTuple, PyGlobal, PyObject } from "../../src/tree/python-values.js";
import { TIMEOUT_MS, corpus, memorySource, mutated, outcome, params } from "./harness.js";

const seeds = corpus("dcp");
const FOLDER = "/fuzz/ckpt";
const WHERE = `${FOLDER}/.metadata`;
const MD = "torch.distributed.checkpoint.metadata";
/** Retained array-buffer memory one input may add (a reader that sizes a buffer from the metadata would blow past it). */
const MAX_GROWTH = 256 * 1024 * 1024;

/** The only errors a damaged `.metadata` may produce. */
function expectMetadataError(err: SavepointError): void {
  expect(err instanceof CorruptCheckpointError || err instanceof UnsupportedFormatError || err instanceof UnsafeCheckpointError, `${err.name}: ${err.message}`).toBe(true);
  expect(err.message).toContain(FOLDER);
}

/** What a successful read must satisfy: files inside the folder, sane ranges, chunks tiling each tensor. */
function checkMetadata(md: DcpMetadata): void {
  for (const [key, item] of md.items) {
    expect(item.key).toBe(key);
    const locations = item.kind === "bytes" ? [item.storage] : item.chunks.map((c) => c.storage);
    for (const s of locations) {
      expect(() => resolveInside(FOLDER, s.file, "check")).not.toThrow();
      expect(Number.isSafeInteger(s.offset) && s.offset >= 0).toBe(true);
      expect(Number.isSafeInteger(s.length) && s.length >= 0).toBe(true);
    }
    if (item.kind === "bytes") continue;
    expect(item.size.every((d) => Number.isSafeInteger(d) && d >= 0)).toBe(true);
    let volume = 0;
    for (const c of item.chunks) {
      expect(c.offsets.length).toBe(item.size.length);
      expect(c.sizes.length).toBe(item.size.length);
      item.size.forEach((dim, d) => expect(c.offsets[d]! + c.sizes[d]!).toBeLessThanOrEqual(dim));
      volume += numel(c.sizes);
    }
    expect(volume).toBe(numel(item.size));
  }
  for (const path of md.plannerData?.values() ?? []) expect(path.length).toBeGreaterThan(0);
}

/** Runs one input through `fn`, bounding its time (outcome: 1 s) and the memory it leaves behind. */
async function bounded<T>(fn: () => Promise<T>) {
  const before = process.memoryUsage().arrayBuffers;
  const r = await outcome(fn);
  expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(MAX_GROWTH);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Generated checkpoints: a few tensors split along dim 0 into chunks stored raw, back to back, in
// one or two .distcp files; then zero to two kinds of damage written into the metadata pickle.

const DTYPES: DType[] = ["float32", "float16", "int64", "uint8", "bfloat16"];
const DAMAGE = ["offsetPast", "lengthPast", "offsetHuge", "pathDotDot", "pathAbsolute", "pathNested", "pathEmpty", "sizeAbsurd", "chunkAbsurd", "chunkPast", "overlap", "gap", "negative", "float", "dropStorage", "dims"] as const;
type Damage = (typeof DAMAGE)[number];

interface Plan {
  tensors: { key: string; dtype: DType; size: number[]; cuts: number[]; file: number }[];
  damage: [Damage, number][];
}

const plan: fc.Arbitrary<Plan> = fc.record({
  tensors: fc.uniqueArray(
    fc.record({
      key: fc.constantFrom("model.w", "model.b", "model.layers.0.weight", "optimizer.state.0.exp_avg", "x"),
      dtype: fc.constantFrom(...DTYPES),
      size: fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 3 }),
      cuts: fc.array(fc.nat(), { maxLength: 2 }),
      file: fc.integer({ min: 0, max: 1 }),
    }),
    { minLength: 1, maxLength: 4, selector: (t) => t.key },
  ),
  damage: fc.array(fc.tuple(fc.constantFrom(...DAMAGE), fc.nat()), { maxLength: 2 }),
});

interface Built {
  metadata: Uint8Array;
  files: Map<string, Uint8Array>;
  /** Each tensor's full row-major bytes as written. */
  expected: Map<string, Uint8Array>;
  damaged: boolean;
}

function dataclass(name: string, state: unknown, module = MD): PyObject {
  return markNewObj(new PyObject(module, name, [], state));
}
const torchSize = (dims: readonly unknown[]) => new PyObject("torch", "Size", [asTuple([...dims])]);

function build(p: Plan): Built {
  const parts: Uint8Array[][] = [[], []];
  const used = [0, 0];
  const expected = new Map<string, Uint8Array>();
  type Chunk = { offsets: unknown[]; sizes: unknown[]; storage: { relative_path: unknown; offset: unknown; length: unknown } };
  const described: { key: string; dtype: DType; size: unknown[]; chunks: Chunk[] }[] = [];
  for (const [ti, t] of p.tensors.entries()) {
    const item = itemSize(t.dtype);
    const rowBytes = numel(t.size.slice(1)) * item;
    const full = new Uint8Array(numel(t.size) * item).map((_, i) => (i * 31 + ti * 7 + 1) & 0xff);
    expected.set(t.key, full);
    // Row boundaries along dim 0.
    const bounds = [...new Set([0, ...t.cuts.map((c) => c % (t.size[0]! + 1)), t.size[0]!])].sort((a, b) => a - b);
    const file = `__${t.file}_0.distcp`;
    const chunks: Chunk[] = [];
    for (let i = 0; i + 1 < bounds.length; i++) {
      const bytes = full.subarray(bounds[i]! * rowBytes, bounds[i + 1]! * rowBytes);
      chunks.push({
        offsets: [bounds[i]!, ...t.size.slice(1).map(() => 0)],
        sizes: [bounds[i + 1]! - bounds[i]!, ...t.size.slice(1)],
        storage: { relative_path: file, offset: used[t.file]!, length: bytes.length },
      });
      parts[t.file]!.push(bytes);
      used[t.file]! += bytes.length;
    }
    if (chunks.length === 0) chunks.push({ offsets: t.size.map(() => 0), sizes: [...t.size], storage: { relative_path: file, offset: used[t.file]!, length: 0 } });
    described.push({ key: t.key, dtype: t.dtype, size: [...t.size], chunks });
  }
  const files = new Map<string, Uint8Array>();
  for (const f of [0, 1]) files.set(`__${f}_0.distcp`, Buffer.concat(parts[f]!));

  let dropped: string | undefined;
  for (const [how, n] of p.damage) {
    const t = described[n % described.length]!;
    const c = t.chunks[(n >> 3) % t.chunks.length]!;
    const fileSize = files.get(String(c.storage.relative_path))?.length ?? 0;
    switch (how) {
      case "offsetPast": c.storage.offset = fileSize + (n % 3); break;
      case "lengthPast": c.storage.length = fileSize + 1 + (n % 5); break;
      case "offsetHuge": c.storage.offset = [2 ** 31, 2 ** 32 - 1, 2 ** 53 - 1, 2 ** 53, 2 ** 62][n % 5]; break;
      case "pathDotDot": c.storage.relative_path = ["../__0_0.distcp", "a/../../etc/passwd", "..", "./__0_0.distcp", "x/./y"][n % 5]; break;
      case "pathAbsolute": c.storage.relative_path = ["/etc/passwd", "C:\\x.distcp", "\\\\server\\share", "/fuzz/ckpt/__0_0.distcp"][n % 4]; break;
      case "pathNested": c.storage.relative_path = ["sub/__0_0.distcp", "missing.distcp", "a\0b", 7, null][n % 5]; break;
      case "pathEmpty": c.storage.relative_path = ""; break;
      case "sizeAbsurd": t.size[0] = [2 ** 31, 2 ** 40, 2 ** 53 - 1, 2 ** 64][n % 4]; c.sizes[0] = t.size[0]; break;
      case "chunkAbsurd": c.sizes = c.sizes.map(() => [2 ** 31, 2 ** 50, 2 ** 53 - 1][n % 3]); break;
      case "chunkPast": c.offsets[0] = (c.offsets[0] as number) + 1; break;
      case "overlap": t.chunks.push({ ...c, storage: { ...c.storage } }); break;
      case "gap": if (t.chunks.length > 1) t.chunks.splice((n >> 3) % t.chunks.length, 1); else c.sizes[0] = Math.max(0, (c.sizes[0] as number) - 1); break;
      case "negative": [() => (c.storage.offset = -1), () => (c.storage.length = -8), () => (c.offsets[0] = -1), () => (c.sizes[0] = -2), () => (t.size[0] = -1)][n % 5]!(); break;
      case "float": [() => (c.storage.offset = 0.5), () => (c.storage.length = 1e300), () => (c.sizes[0] = Number.NaN), () => (t.size[0] = Infinity)][n % 4]!(); break;
      case "dropStorage": dropped = t.key; break;
      case "dims": [() => c.sizes.push(1), () => c.offsets.pop(), () => t.size.push(1), () => (t.size.length = 0)][n % 4]!(); break;
    }
  }

  const stateDictMetadata: Record<string, unknown> = {};
  const storageData = new Map<PyObject, PyObject>();
  const layout = new PyObject("torch.serialization", "_get_layout", ["torch.strided"]);
  const contiguous = new PyObject(MD, "_MEM_FORMAT_ENCODING", [0]);
  for (const t of described) {
    const properties = dataclass("TensorProperties", asTuple([new PyGlobal("torch", torchDTypeName(t.dtype)), layout, false, contiguous, false]));
    const chunks = t.chunks.map((c, index) => {
      if (t.key !== dropped || index > 0) {
        const info = dataclass("_StorageInfo", { ...c.storage }, "torch.distributed.checkpoint.filesystem");
        storageData.set(dataclass("MetadataIndex", { fqn: t.key, offset: torchSize(c.offsets), index }), info);
      }
      return dataclass("ChunkStorageMetadata", { offsets: torchSize(c.offsets), sizes: torchSize(c.sizes) });
    });
    stateDictMetadata[t.key] = dataclass("TensorStorageMetadata", { properties, size: torchSize(t.size), chunks });
  }
  const metadata = pickle(dataclass("Metadata", { state_dict_metadata: stateDictMetadata, planner_data: {}, storage_data: storageData, storage_meta: null, version: "1.0.0" }), { where: "fuzz" });
  return { metadata, files, expected, damaged: p.damage.length > 0 };
}

/** The DCP format's read over the metadata and files in memory. */
function readInMemory(metadata: Uint8Array, files: Map<string, Uint8Array>): Promise<unknown> {
  const all = new Map(files).set(".metadata", metadata);
  return dcpFormat.read!({
    io: { stat: async () => null } as never,
    path: FOLDER,
    info: { kind: "directory" } as never,
    safe: "strict",
    verify: true,
    async open(relative?: string) {
      const full = resolveInside(FOLDER, relative ?? ".metadata", FOLDER);
      const bytes = all.get(relative ?? ".metadata");
      if (!bytes) throw new CheckpointNotFoundError(`${full} does not exist.`, { subject: full });
      return memorySource(bytes, full);
    },
  });
}

function tensorsOf(tree: unknown, out: Map<string, TensorSource> = new Map(), prefix = ""): Map<string, TensorSource> {
  if (isTensorSource(tree)) out.set(prefix, tree);
  else if (tree !== null && typeof tree === "object") for (const [k, v] of Object.entries(tree)) tensorsOf(v, out, prefix ? `${prefix}.${k}` : k);
  return out;
}

async function bytesOf(t: TensorSource): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of t.chunks(64 * 1024)) parts.push(c.slice());
  return Buffer.concat(parts);
}

async function firstChunk(t: TensorSource): Promise<void> {
  for await (const _ of t.chunks(64 * 1024)) return;
}

describe("fuzz: DCP .metadata", () => {
  it("damaged real .metadata files: validated metadata or a savepoint error, within a second", async () => {
    for (const s of seeds) checkMetadata(readDcpMetadata(s, { where: WHERE, folder: FOLDER, safe: "strict" }));
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(mutated(seeds), fc.constantFrom("strict" as const, "placeholder" as const), async (bytes, safe) => {
        const r = await bounded(async () => readDcpMetadata(bytes, { where: WHERE, folder: FOLDER, safe }));
        if ("error" in r) return expectMetadataError(r.error);
        accepted++;
        checkMetadata(r.value);
      }),
      params(3_000),
    );
    expect(accepted).toBeGreaterThan(0);
  }, TIMEOUT_MS);

  it("generated metadata with hostile fields: a load gives back the written bytes, or a savepoint error", async () => {
    let loaded = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(plan, async (p) => {
        const b = build(p);
        const md = await bounded(async () => readDcpMetadata(b.metadata, { where: WHERE, folder: FOLDER, safe: "strict" }));
        if ("error" in md) {
          expectMetadataError(md.error);
          refused++;
          return;
        }
        checkMetadata(md.value);
        const totalFileBytes = [...b.files.values()].reduce((s, f) => s + f.length, 0);
        const r = await bounded(async () => {
          const tensors = tensorsOf(await readInMemory(b.metadata, b.files));
          const out = new Map<string, Uint8Array>();
          for (const [key, t] of tensors) {
            const item = md.value.items.get(key);
            const chunks = item?.kind === "tensor" ? item.chunks.length : 1;
            // Every byte of a tensor comes from a range of a file. The load is lazy, so a tensor
            // larger than that may come back, but its first read must then fail (not allocate it).
            if (t.byteLength > chunks * totalFileBytes) {
              await firstChunk(t);
              throw new Error(`read ${t.byteLength} bytes of "${key}" out of ${totalFileBytes} bytes of files`);
            }
            out.set(key, await bytesOf(t));
          }
          return out;
        });
        if ("error" in r) {
          expect(r.error instanceof CorruptCheckpointError || r.error instanceof UnsupportedFormatError || r.error instanceof CheckpointNotFoundError, `${r.error.name}: ${r.error.message}`).toBe(true);
          expect(b.damaged).toBe(true);
          refused++;
          return;
        }
        loaded++;
        for (const [key, bytes] of r.value) {
          const item = md.value.items.get(key);
          expect(item?.kind).toBe("tensor");
          if (item?.kind === "tensor") expect(bytes.length).toBe(numel(item.size) * itemSize(item.dtype));
          if (!b.damaged) expect(Buffer.from(bytes).equals(b.expected.get(key)!)).toBe(true);
        }
        if (!b.damaged) expect(r.value.size).toBe(p.tensors.length);
      }),
      params(3_000),
    );
    expect(loaded).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
  }, TIMEOUT_MS);
});
