/**
 * Corruption: 1,000 random byte flips and 200 truncations over files we write and the fixtures.
 * Every damaged load, with every tensor read, must return exactly the original values (a flip in
 * padding or an unchecked field) or throw CorruptCheckpointError / UnsupportedFormatError naming
 * the file, within one second, with bounded memory.
 *
 * torch zip files carry a CRC32 per record, safetensors files savepoint writes carry CRC-32s of
 * their header and every tensor in `__metadata__`, and DCP folders savepoint writes carry zip items
 * and a CRC-32 of `.metadata` in `.metadata.crc32`; all are checked by default, so for them a
 * silently changed value fails the test. Foreign safetensors files (the fixtures), legacy torch
 * files, tfjs shards and the `.metadata` of foreign DCP folders carry no checksum at all: a flip in their data is
 * undetectable by design, so for them silent changes are counted and reported, and only the
 * error contract is enforced. Our safetensors files (single and sharded) are also damaged at every
 * byte and cut at every length, with and without `verify`.
 *
 * CORRUPTION_SEED fixes the random choices (printed on failure); CORRUPTION_FLIPS and
 * CORRUPTION_CUTS change the counts.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import {
  CorruptCheckpointError,
  Fabric,
  HostTensor,
  MemoryIO,
  PyGlobal,
  UnsupportedFormatError,
  isStoredTensor,
  type StoredTensor,
} from "../../src/index.js";
import { crc32 } from "../../src/formats/zip/crc32.js";
import { assembleDcpMetadata, writeDcpMetadata } from "../../src/formats/dcp/write-dcp-metadata.js";
import { writeDcpShard } from "../../src/formats/dcp/write-dcp-shard.js";
import { defaultFormats } from "../../src/formats/default-formats.js";
import { safetensorsIndexFormatWith } from "../../src/formats/safetensors-index/safetensors-index-format.js";
import { FIXTURES, flatten } from "../helpers/fixtures.js";
import { mlp, tf, useCpu } from "../helpers/tfjs.js";

const FLIPS = Number(process.env.CORRUPTION_FLIPS ?? 1000);
const CUTS = Number(process.env.CORRUPTION_CUTS ?? 200);
const SEED = Number(process.env.CORRUPTION_SEED ?? 20261128);
/** Fixture files above this size are left out to keep the run short (mnist.pt is kept: a 1.5 MB torch zip). */
const MAX_FIXTURE_BYTES = 400_000;

/** A checkpoint as files in memory: `load` is the path to load, `files` what the IO holds. */
interface Subject {
  name: string;
  load: string;
  files: Map<string, Uint8Array>;
  /** Every byte of it is covered by a CRC (or a refusal): silent changes are failures. */
  checksummed: boolean;
  baseline?: Map<string, string>;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A canonical text of a non-tensor leaf, so two loads compare exactly. */
function canon(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => {
    if (typeof x === "bigint") return `${x}n`;
    if (typeof x === "number" && !Number.isFinite(x)) return String(x);
    if (x instanceof Uint8Array) return `bytes:${Buffer.from(x).toString("hex")}`;
    if (x instanceof PyGlobal) return `global:${x.module}.${x.name}`;
    if (x instanceof Set) return [...x].map(canon).sort();
    if (x instanceof Map) return [...x].map(([k, y]) => [canon(k), y]);
    return x;
  });
}

/** Loads and reads everything: path → canonical value (tensors: dtype, shape, CRC of bytes). */
async function materialize(s: Subject, files: Map<string, Uint8Array>, verify = true): Promise<Map<string, string>> {
  const io = new MemoryIO();
  for (const [k, v] of files) io.files.set(k, v);
  const tree = await new Fabric({ io, verify, formats: FORMATS }).load(s.load);
  const out = new Map<string, string>();
  for (const [path, v] of flatten(tree)) {
    if (isStoredTensor(v)) out.set(path, `${v.dtype}[${v.shape.join(",")}]:${crc32(await (v as StoredTensor).bytes())}`);
    else out.set(path, canon(v));
  }
  return out;
}

/** The defaults, with small safetensors shards so a sharded save makes several files. */
const FORMATS = [safetensorsIndexFormatWith({ maxShardSize: 64 }), ...defaultFormats().filter((f) => f.name !== "safetensors-index")];

function sameTree(a: Map<string, string>, b: Map<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
}

/** A sharded (DCP) folder as two ranks write it (each rank's rows of a weight, a value, the metadata); its files. */
async function writeOurDcp(io: MemoryIO, folder: string): Promise<Map<string, Uint8Array>> {
  const w = HostTensor.fromValues("float32", [6, 4], Array.from({ length: 24 }, (_, i) => i / 8 - 1));
  const rows = (r: number) => new HostTensor("float32", [3, 4], w.raw.slice(r * 48, (r + 1) * 48));
  const written = await Promise.all(
    [0, 1].map((r) =>
      writeDcpShard(
        [{ kind: "tensor", key: "model.w", size: [6, 4], offsets: [3 * r, 0], source: rows(r) }, ...(r === 0 ? [{ kind: "bytes" as const, key: "model.step", value: 1234 }] : [])],
        { io, folder, file: `__${r}_0.distcp`, chunkBytes: 1 << 20 },
      ),
    ),
  );
  await writeDcpMetadata(assembleDcpMetadata(written, { plannerData: new Map([["model.w", ["model", "w"]], ["model.step", ["model", "step"]]]) }), { io, folder });
  return new Map([...io.files].filter(([k]) => k.startsWith(`${folder}/`)));
}

async function ourFiles(): Promise<Subject[]> {
  await useCpu();
  const io = new MemoryIO();
  const fabric = new Fabric({ io });
  const model = mlp(3);
  const opt = tf.train.adam(0.01);
  const state = {
    model,
    optimizer: opt,
    step: 1234,
    hparams: { lr: 1e-3, name: "run-7", betas: [0.9, 0.999], nested: { flag: true, none: null } },
    big: HostTensor.fromValues("int64", [3], [1n, -2n, 2n ** 40n]),
    half: HostTensor.fromValues("float16", [5], [0.5, -1, 2, 1000, 0]),
    mask: HostTensor.fromValues("bool", [4], [1, 0, 1, 1]),
    bytes: new Uint8Array([1, 2, 3]),
  };
  await fabric.save("ours/all.ckpt", state);
  await fabric.save("ours/all.safetensors", { model, step: 1234, hparams: state.hparams, half: state.half });
  const sharded = await writeOurDcp(io, "ours/sharded");
  return [
    { name: "ours/sharded/", load: "ours/sharded", files: sharded, checksummed: true },
    { name: "ours/all.ckpt", load: "ours/all.ckpt", files: new Map([["ours/all.ckpt", io.files.get("ours/all.ckpt")!]]), checksummed: true },
    { name: "ours/all.safetensors", load: "ours/all.safetensors", files: new Map([["ours/all.safetensors", io.files.get("ours/all.safetensors")!]]), checksummed: true },
  ];
}

function fixtureFiles(): Subject[] {
  const out: Subject[] = [];
  for (const abs of walk(FIXTURES)) {
    const rel = relative(FIXTURES, abs);
    const size = statSync(abs).size;
    if (!/\.(pt|pth|ckpt|bin|safetensors)$/.test(rel) || rel.includes(".ckpt/") || rel.startsWith("tfjs/") || rel.includes("megatron-dcp")) continue;
    if (size > MAX_FIXTURE_BYTES && !rel.endsWith("mnist.pt")) continue;
    const bytes = new Uint8Array(readFileSync(abs));
    const zip = bytes[0] === 0x50 && bytes[1] === 0x4b;
    out.push({ name: rel, load: rel, files: new Map([[rel, bytes]]), checksummed: zip });
  }
  // Directory checkpoints: every file of them is a candidate for damage.
  for (const d of ["lightning-2.6/fabric-fsdp2-sharded.ckpt", "tfjs/layers_model"]) {
    const files = new Map(walk(join(FIXTURES, d)).map((abs) => [relative(FIXTURES, abs), new Uint8Array(readFileSync(abs))] as const));
    out.push({ name: `${d}/`, load: d, files, checksummed: false });
  }
  return out;
}

describe("random damage to our files and the fixtures", () => {
  let subjects: Subject[] = [];
  const excluded: string[] = [];
  beforeAll(async () => {
    for (const s of [...(await ourFiles()), ...fixtureFiles()]) {
      try {
        s.baseline = await materialize(s, s.files);
        subjects.push(s);
      } catch (err) {
        // A file the readers refuse undamaged has nothing to compare against (fixtures.test.ts owns that).
        excluded.push(`${s.name}: ${(err as Error).message.slice(0, 120)}`);
      }
    }
    subjects = subjects.filter((s) => s.baseline);
  }, 120_000);

  it(`${FLIPS} byte flips and ${CUTS} truncations: original values or a typed error naming the file, each within a second`, async () => {
    expect(subjects.length).toBeGreaterThan(40);
    expect(subjects.filter((s) => s.checksummed).length).toBeGreaterThan(20);
    const rand = mulberry32(SEED);
    const pick = (n: number) => Math.floor(rand() * n);
    const stats = { same: 0, refused: 0, silentUnchecksummed: 0, slowest: 0, peakArrayBuffers: 0, namedRecord: 0 };
    const failures: string[] = [];
    const baseMemory = process.memoryUsage().arrayBuffers;
    const started = performance.now();

    for (let i = 0; i < FLIPS + CUTS; i++) {
      const s = subjects[i % subjects.length]!;
      const names = [...s.files.keys()];
      const file = names[pick(names.length)]!;
      const original = s.files.get(file)!;
      let damaged: Uint8Array;
      let what: string;
      if (i < FLIPS) {
        const at = pick(original.length);
        damaged = original.slice();
        damaged[at] = original[at]! ^ (1 + pick(255));
        what = `flip of byte ${at} in ${file}`;
      } else {
        const length = pick(original.length);
        damaged = original.slice(0, length);
        what = `truncation of ${file} to ${length} of ${original.length} bytes`;
      }
      const files = new Map(s.files);
      files.set(file, damaged);
      const t0 = performance.now();
      let outcome: Map<string, string> | Error;
      try {
        outcome = await materialize(s, files);
      } catch (err) {
        outcome = err as Error;
      }
      const ms = performance.now() - t0;
      stats.slowest = Math.max(stats.slowest, ms);
      stats.peakArrayBuffers = Math.max(stats.peakArrayBuffers, process.memoryUsage().arrayBuffers - baseMemory);
      const label = `${what} (seed ${SEED}, case ${i})`;
      if (ms > 1000) failures.push(`${label}: took ${ms.toFixed(0)} ms`);
      if (outcome instanceof Error) {
        if (!(outcome instanceof CorruptCheckpointError || outcome instanceof UnsupportedFormatError)) {
          failures.push(`${label}: ${outcome.constructor.name}: ${outcome.message}`);
        } else if (!outcome.message.includes(s.load)) {
          failures.push(`${label}: the message does not name ${s.load}: ${outcome.message}`);
        } else {
          stats.refused++;
          if (/data\/\w+|data\.pkl|\.distcp|"[^"]+"|\(tensor|entry|record/.test(outcome.message)) stats.namedRecord++;
        }
      } else if (sameTree(outcome, s.baseline!)) {
        stats.same++;
      } else if (s.checksummed) {
        failures.push(`${label}: loaded different values without an error`);
      } else {
        stats.silentUnchecksummed++;
      }
    }
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `[corruption] ${FLIPS + CUTS} damaged loads over ${subjects.length} checkpoints (${subjects.filter((s) => s.checksummed).length} with CRCs) in ${seconds.toFixed(1)} s: ` +
        `${stats.refused} refused (${stats.namedRecord} naming a record or tensor), ${stats.same} unchanged (padding, unchecked fields), ` +
        `${stats.silentUnchecksummed} silently different in formats without checksums; slowest ${stats.slowest.toFixed(0)} ms, ` +
        `peak extra ArrayBuffer memory ${(stats.peakArrayBuffers / 2 ** 20).toFixed(1)} MiB.` +
        (excluded.length ? `\n[corruption] not loadable even undamaged, left out: ${excluded.join("; ")}` : ""),
    );
    expect(failures.slice(0, 20), `${failures.length} failures`).toEqual([]);
    expect(stats.peakArrayBuffers).toBeLessThan(512 << 20);
  }, 240_000);

  it("our safetensors files (single and sharded) and DCP folders: every byte flipped and every cut refused or harmless; without verify some load different values", async () => {
    await useCpu();
    const io = new MemoryIO();
    const fabric = new Fabric({ io, formats: FORMATS });
    const model = mlp(3);
    const half = HostTensor.fromValues("float16", [5], [0.5, -1, 2, 1000, 0]);
    await fabric.save("st/all.safetensors", { model, step: 1234, hparams: { lr: 1e-3, name: "run-7" }, half });
    await fabric.save("st/sharded/model.safetensors.index.json", { model, half });
    const shards = [...io.files.keys()].filter((k) => k.startsWith("st/sharded/") && k.endsWith(".safetensors"));
    expect(shards.length).toBeGreaterThan(1);
    const pick = (prefix: string) => new Map([...io.files].filter(([k]) => k.startsWith(prefix)));
    const cases: { s: Subject; targets: string[] }[] = [
      { s: { name: "st/all.safetensors", load: "st/all.safetensors", files: pick("st/all."), checksummed: true }, targets: ["st/all.safetensors"] },
      // The index itself carries no checksum (it is Hugging Face's format); its shards do.
      { s: { name: "st/sharded/", load: "st/sharded/model.safetensors.index.json", files: pick("st/sharded/"), checksummed: true }, targets: shards },
    ];
    const dcp = await writeOurDcp(io, "st/dcp");
    cases.push({ s: { name: "st/dcp/", load: "st/dcp", files: dcp, checksummed: true }, targets: [...dcp.keys()] });
    const rand = mulberry32(SEED);
    const counts = { verified: { loads: 0, refused: 0, same: 0 }, unverified: { silent: 0 } };
    const failures: string[] = [];
    for (const { s, targets } of cases) {
      const baseline = await materialize(s, s.files);
      for (const file of targets) {
        const original = s.files.get(file)!;
        for (let at = 0; at < 2 * original.length; at++) {
          const damaged = at < original.length ? original.slice() : original.slice(0, at - original.length);
          if (at < original.length) damaged[at] = original[at]! ^ (1 + Math.floor(rand() * 255));
          const what = at < original.length ? `flip of byte ${at}` : `cut to ${at - original.length} bytes`;
          const files = new Map(s.files).set(file, damaged);
          counts.verified.loads++;
          try {
            const got = await materialize(s, files);
            if (sameTree(got, baseline)) counts.verified.same++;
            else failures.push(`${what} of ${file}: loaded different values without an error`);
          } catch (err) {
            if (!(err instanceof CorruptCheckpointError || err instanceof UnsupportedFormatError)) failures.push(`${what} of ${file}: ${(err as Error).name}: ${(err as Error).message}`);
            // A shard's own structural errors name the shard, which is where the damage is.
            else if (!(err as Error).message.includes(s.load) && !(err as Error).message.includes(file)) failures.push(`${what} of ${file}: the message names neither ${s.load} nor ${file}: ${(err as Error).message}`);
            else counts.verified.refused++;
          }
          // What the same damage does without the checksums (as before they existed).
          const unchecked = await materialize(s, files, false).catch(() => undefined);
          if (unchecked && !sameTree(unchecked, baseline)) counts.unverified.silent++;
        }
      }
    }
    console.log(
      `[corruption] our safetensors and DCP files, every byte flipped and every cut: ${counts.verified.loads} loads, ${counts.verified.refused} refused, ${counts.verified.same} unchanged, ` +
        `0 allowed silently different; the same damage with verify: false loads ${counts.unverified.silent} silently different.`,
    );
    expect(failures.slice(0, 20), `${failures.length} failures`).toEqual([]);
    // The checks must be what catches them: without verify, many flips go unnoticed.
    expect(counts.unverified.silent).toBeGreaterThan(100);
  }, 120_000);

  it("a record read only in part (an FSDP flat parameter padded past its tensor) still has its CRC checked", async () => {
    // In this fixture optimizer.state.out.weight.exp_avg_sq is a 144-byte view of a 192-byte
    // record: reading the tensor never reaches the record's end. Byte 10230 lies inside the view.
    const name = "lightning-2.6/fabric-fsdp2-full.ckpt";
    const damaged = new Uint8Array(readFileSync(join(FIXTURES, name)));
    damaged[10230]! ^= 0xff;
    const io = new MemoryIO();
    io.files.set(name, damaged);
    const t = flatten(await new Fabric({ io }).load(name)).get("optimizer.state.out.weight.exp_avg_sq") as StoredTensor;
    expect(t.byteLength).toBe(144);
    await expect(t.data()).rejects.toThrow(/fabric-fsdp2-full\/data\/20 is damaged: its CRC32/);
  });
});
