import { describe, expect, it } from "vitest";
import { CheckpointNotFoundError, CorruptCheckpointError } from "../errors.js";
import type { CheckpointIO } from "../io/checkpoint-io.js";

/** What {@link runIOConformance} needs from an IO adapter's test. */
export interface IOConformanceOptions {
  /** Shown in test names. */
  name: string;
  /** A fresh IO and a fresh root folder (path prefix) in it for each test. */
  setup(): Promise<{ io: CheckpointIO; root: string; cleanup?(): Promise<void> }>;
  /** Back door: the committed bytes at `path` as the storage holds them, or null if absent. */
  readRaw(path: string): Promise<Uint8Array | null>;
}

/** Byte equality without vitest's per-element diffing, which is slow on megabytes. */
function same(a: Uint8Array | null, b: Uint8Array): boolean {
  return a !== null && a.byteLength === b.byteLength && a.every((x, i) => x === b[i]);
}

function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed * 2654435761;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/**
 * The contract every `CheckpointIO` meets, checked through the storage's own bytes: writes are
 * invisible until commit, commit replaces atomically, abort keeps the old version, ranged reads
 * return exactly what was written, and missing files and bad ranges give typed errors.
 */
export function runIOConformance(options: IOConformanceOptions): void {
  describe(`CheckpointIO conformance: ${options.name}`, () => {
    const withIO = async (fn: (io: CheckpointIO, root: string) => Promise<void>) => {
      const { io, root, cleanup } = await options.setup();
      try {
        await fn(io, root);
      } finally {
        await cleanup?.();
      }
    };

    it("writes in chunks, commits, and reads ranges back byte for byte", () =>
      withIO(async (io, root) => {
        const path = `${root}/a/b/ckpt.pt`;
        const data = pattern(3 * 1024 * 1024 + 17, 1);
        const w = await io.openWrite(path);
        for (let off = 0; off < data.byteLength; off += 100_000) await w.write(data.subarray(off, off + 100_000));
        expect(w.position).toBe(data.byteLength);
        expect(await options.readRaw(path)).toBeNull();
        await w.commit();
        expect(same(await options.readRaw(path), data)).toBe(true);
        const info = await io.stat(path);
        expect(info).toMatchObject({ kind: "file", size: data.byteLength });
        const r = await io.openRead(path);
        try {
          expect(r.size).toBe(data.byteLength);
          expect(same(await r.read(12345, 1000), data.subarray(12345, 13345))).toBe(true);
          const into = new Uint8Array(10);
          expect(await r.read(data.byteLength - 10, 10, into)).toBe(into);
          expect(into).toEqual(data.subarray(data.byteLength - 10));
          await expect(r.read(data.byteLength - 5, 10)).rejects.toBeInstanceOf(CorruptCheckpointError);
        } finally {
          await r.close();
        }
      }));

    it("replaces an existing file only on commit, and abort keeps the old one", () =>
      withIO(async (io, root) => {
        const path = `${root}/ckpt.pt`;
        const v1 = pattern(5000, 2);
        const v2 = pattern(7000, 3);
        const w1 = await io.openWrite(path);
        await w1.write(v1);
        await w1.commit();
        const w2 = await io.openWrite(path);
        await w2.write(v2.subarray(0, 3000));
        expect(same(await options.readRaw(path), v1)).toBe(true);
        await w2.abort();
        expect(same(await options.readRaw(path), v1)).toBe(true);
        const w3 = await io.openWrite(path);
        await w3.write(v2);
        await w3.commit();
        expect(same(await options.readRaw(path), v2)).toBe(true);
      }));

    it("reports a missing file with CheckpointNotFoundError and stat null", () =>
      withIO(async (io, root) => {
        expect(await io.stat(`${root}/missing.pt`)).toBeNull();
        await expect(io.openRead(`${root}/missing.pt`)).rejects.toBeInstanceOf(CheckpointNotFoundError);
      }));

    it("lists, renames and removes where it declares those capabilities", () =>
      withIO(async (io, root) => {
        for (const name of ["x.pt", "y.pt"]) {
          const w = await io.openWrite(`${root}/d/${name}`);
          await w.write(pattern(10, 4));
          await w.commit();
        }
        if (io.list) expect(await io.list(`${root}/d`)).toEqual(["x.pt", "y.pt"]);
        if (io.rename) {
          await io.rename(`${root}/d/x.pt`, `${root}/d/z.pt`);
          expect(await options.readRaw(`${root}/d/z.pt`)).toEqual(pattern(10, 4));
          expect(await options.readRaw(`${root}/d/x.pt`)).toBeNull();
        }
        if (io.remove) {
          await io.remove(`${root}/d`);
          expect(await io.stat(`${root}/d/y.pt`)).toBeNull();
          await io.remove(`${root}/never-existed`);
        }
      }));
  });
}
