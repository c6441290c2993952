// A port of core's runIOConformance (@savepoint/core/testing) to the browser, where vitest cannot
// run: the same four scenarios, the same checks, and the same back door (the bytes as the storage
// holds them, read with the raw OPFS / IndexedDB APIs rather than through the IO under test).
import type { CheckpointIO } from "@savepoint/core";
import { IndexedDbIO, OpfsIO } from "../../src/index.js";

export interface IOCheckResult {
  name: string;
  ok: boolean;
  error?: string;
  /** Whether writes could use sync access handles (they can only in dedicated workers). */
  syncAccess: boolean;
}

type Kind = "opfs" | "indexeddb" | "opfs-worker";
const DB = "savepoint-io-checks";

function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed * 2654435761;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

function same(a: Uint8Array | null, b: Uint8Array): boolean {
  return a !== null && a.byteLength === b.byteLength && a.every((x, i) => x === b[i]);
}

function check(cond: boolean, what: string): void {
  if (!cond) throw new Error(`check failed: ${what}`);
}

async function rejectsWith(p: Promise<unknown>, name: string, what: string): Promise<void> {
  try {
    await p;
  } catch (err) {
    check((err as Error).name === name, `${what}: expected ${name}, got ${(err as Error).name}: ${(err as Error).message}`);
    return;
  }
  throw new Error(`check failed: ${what}: expected ${name}, but it resolved`);
}

/** Back door into OPFS: the file's bytes, or null when no such file is committed. */
async function opfsRaw(path: string): Promise<Uint8Array | null> {
  let dir = await navigator.storage.getDirectory();
  const parts = path.split("/").filter(Boolean);
  try {
    for (const p of parts.slice(0, -1)) dir = await dir.getDirectoryHandle(p);
    const file = await (await dir.getFileHandle(parts[parts.length - 1]!)).getFile();
    return new Uint8Array(await file.arrayBuffer());
  } catch (err) {
    if ((err as Error).name === "NotFoundError" || (err as Error).name === "TypeMismatchError") return null;
    throw err;
  }
}

/** Back door into IndexedDB: the committed version's records, concatenated, or null. */
async function idbRaw(path: string): Promise<Uint8Array | null> {
  const db = await new Promise<IDBDatabase>((resolve, reject) => {
    const req = indexedDB.open(DB);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  try {
    const get = <T>(store: string, key: IDBValidKey | IDBKeyRange, all = false) =>
      new Promise<T>((resolve, reject) => {
        const s = db.transaction(store, "readonly").objectStore(store);
        const req = all ? s.getAll(key) : s.get(key);
        req.onsuccess = () => resolve(req.result as T);
        req.onerror = () => reject(req.error);
      });
    const rec = await get<{ size: number; blob: string } | undefined>("files", path);
    if (!rec) return null;
    const records = await get<Uint8Array[]>("chunks", IDBKeyRange.bound([rec.blob, 0], [rec.blob, Number.MAX_SAFE_INTEGER]), true);
    const out = new Uint8Array(rec.size);
    let off = 0;
    for (const r of records) (out.set(r, off), (off += r.byteLength));
    return off === rec.size ? out : null;
  } finally {
    db.close();
  }
}

async function setup(kind: Kind): Promise<{ io: CheckpointIO; root: string; readRaw: (p: string) => Promise<Uint8Array | null> }> {
  const root = `io-checks/${kind}-${Math.random().toString(36).slice(2, 8)}`;
  if (kind === "indexeddb") return { io: new IndexedDbIO({ database: DB, recordBytes: 64 * 1024 }), root, readRaw: idbRaw };
  return { io: new OpfsIO(), root, readRaw: opfsRaw };
}

const scenarios: Array<[string, (io: CheckpointIO, root: string, readRaw: (p: string) => Promise<Uint8Array | null>) => Promise<void>]> = [
  [
    "writes in chunks, commits, and reads ranges back byte for byte",
    async (io, root, readRaw) => {
      const path = `${root}/a/b/ckpt.pt`;
      const data = pattern(3 * 1024 * 1024 + 17, 1);
      const w = await io.openWrite(path);
      for (let off = 0; off < data.byteLength; off += 100_000) await w.write(data.subarray(off, off + 100_000));
      check(w.position === data.byteLength, "position counts the bytes written");
      check((await readRaw(path)) === null, "nothing visible before commit");
      await w.commit();
      check(same(await readRaw(path), data), "committed bytes equal what was written");
      const info = await io.stat(path);
      check(info?.kind === "file" && info.size === data.byteLength, "stat reports the file and its size");
      const r = await io.openRead(path);
      try {
        check(r.size === data.byteLength, "reader size");
        check(same(await r.read(12345, 1000), data.subarray(12345, 13345)), "ranged read");
        const into = new Uint8Array(10);
        check((await r.read(data.byteLength - 10, 10, into)) === into, "read fills `into`");
        check(same(into, data.subarray(data.byteLength - 10)), "read into the tail");
        await rejectsWith(r.read(data.byteLength - 5, 10), "CorruptCheckpointError", "a read past the end");
      } finally {
        await r.close();
      }
    },
  ],
  [
    "replaces an existing file only on commit, and abort keeps the old one",
    async (io, root, readRaw) => {
      const path = `${root}/ckpt.pt`;
      const v1 = pattern(5000, 2);
      const v2 = pattern(7000, 3);
      const w1 = await io.openWrite(path);
      await w1.write(v1);
      await w1.commit();
      const w2 = await io.openWrite(path);
      await w2.write(v2.subarray(0, 3000));
      check(same(await readRaw(path), v1), "old version visible during a write");
      await w2.abort();
      check(same(await readRaw(path), v1), "abort keeps the old version");
      const w3 = await io.openWrite(path);
      await w3.write(v2);
      await w3.commit();
      check(same(await readRaw(path), v2), "commit replaces");
    },
  ],
  [
    "reports a missing file with CheckpointNotFoundError and stat null",
    async (io, root) => {
      check((await io.stat(`${root}/missing.pt`)) === null, "stat of a missing file is null");
      await rejectsWith(io.openRead(`${root}/missing.pt`), "CheckpointNotFoundError", "openRead of a missing file");
    },
  ],
  [
    "lists, renames and removes where it declares those capabilities",
    async (io, root, readRaw) => {
      for (const name of ["x.pt", "y.pt"]) {
        const w = await io.openWrite(`${root}/d/${name}`);
        await w.write(pattern(10, 4));
        await w.commit();
      }
      if (io.list) check(JSON.stringify(await io.list(`${root}/d`)) === JSON.stringify(["x.pt", "y.pt"]), "list");
      if (io.rename) {
        await io.rename(`${root}/d/x.pt`, `${root}/d/z.pt`);
        check(same(await readRaw(`${root}/d/z.pt`), pattern(10, 4)), "renamed file has the bytes");
        check((await readRaw(`${root}/d/x.pt`)) === null, "old name is gone");
      }
      if (io.remove) {
        await io.remove(`${root}/d`);
        check((await io.stat(`${root}/d/y.pt`)) === null, "removed");
        await io.remove(`${root}/never-existed`);
      }
    },
  ],
];

/** Runs every scenario on a fresh root of `kind`'s storage; never throws. */
export async function runIOChecks(kind: Kind): Promise<IOCheckResult[]> {
  const syncAccess = typeof (globalThis as { FileSystemFileHandle?: { prototype: { createSyncAccessHandle?: unknown } } }).FileSystemFileHandle?.prototype.createSyncAccessHandle === "function";
  const results: IOCheckResult[] = [];
  for (const [name, run] of scenarios) {
    const { io, root, readRaw } = await setup(kind);
    try {
      await run(io, root, readRaw);
      results.push({ name, ok: true, syncAccess });
    } catch (err) {
      results.push({ name, ok: false, error: (err as Error).stack ?? String(err), syncAccess });
    } finally {
      await io.remove?.(root).catch(() => {});
    }
  }
  return results;
}
