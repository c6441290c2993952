import { boundedSource, CheckpointNotFoundError, CheckpointWriteError, CorruptCheckpointError, SavepointError, type AtomicWrite, type ByteSource, type CheckpointIO, type PathInfo } from "@savepoint/core";
import { done, openDatabase, request } from "./idb.js";
import { pathParts } from "./path-parts.js";

/** Options of {@link IndexedDbIO}. */
export interface IndexedDbIOOptions {
  /** Database name. @default "savepoint-checkpoints" */
  database?: string;
  /** Bytes per stored record: reads fetch whole records, writes buffer one. @default 1 MiB */
  recordBytes?: number;
}

/** What the `files` store holds per committed path. */
interface FileRecord {
  size: number;
  mtimeMs: number;
  /** Key prefix of this version's records in `chunks`. */
  blob: string;
  recordBytes: number;
}

/** A write in progress, by version key. */
interface Pending {
  path: string;
  touchedMs: number;
}

/** A pending write untouched for this long is taken as abandoned. */
const STALE_MS = 10 * 60 * 1000;

const FILES = "files";
const CHUNKS = "chunks";
const PENDING = "pending";
const STORES = [FILES, CHUNKS, PENDING] as const;

/**
 * Checkpoints in IndexedDB, for browsers without the Origin Private File System. A write stores
 * its bytes as records of a new version, one record per transaction (memory stays at one record);
 * commit then swaps the path to the new version and deletes the old one in a single transaction,
 * so a reader sees the old checkpoint or the new one, never a mix. Versions of writes that never
 * committed (a closed tab) are deleted the next time the IO is used.
 *
 * @example
 * ```ts
 * const fabric = new Fabric({ backend: webgpuBackend(), io: new IndexedDbIO() });
 * ```
 */
export class IndexedDbIO implements CheckpointIO {
  readonly name = "browser IndexedDB";
  readonly #name: string;
  readonly #recordBytes: number;
  #db: Promise<IDBDatabase> | null = null;

  constructor(options: IndexedDbIOOptions = {}) {
    this.#name = options.database ?? "savepoint-checkpoints";
    this.#recordBytes = options.recordBytes ?? 1024 * 1024;
    if (!Number.isSafeInteger(this.#recordBytes) || this.#recordBytes < 1) throw new SavepointError(`recordBytes must be a positive integer, got ${String(options.recordBytes)}.`);
  }

  async stat(path: string): Promise<PathInfo | null> {
    const key = norm(path);
    const db = await this.#open();
    const tx = db.transaction(FILES, "readonly");
    const rec = (await request(tx.objectStore(FILES).get(key))) as FileRecord | undefined;
    if (rec) return { kind: "file", size: rec.size, mtimeMs: rec.mtimeMs };
    const inside = await request(tx.objectStore(FILES).count(under(key)));
    return inside > 0 || key === "" ? { kind: "directory", size: 0 } : null;
  }

  async openRead(path: string): Promise<ByteSource> {
    const key = norm(path);
    const db = await this.#open();
    const rec = (await request(db.transaction(FILES, "readonly").objectStore(FILES).get(key))) as FileRecord | undefined;
    if (!rec) {
      const st = await this.stat(path);
      throw new CheckpointNotFoundError(st ? `${path} is a directory, not a checkpoint file.` : `no checkpoint at ${path} in IndexedDB (${this.#name}).`, { subject: path });
    }
    return boundedSource(path, rec.size, async (offset, length, into) => {
      const out = into ?? new Uint8Array(length);
      if (length === 0) return out;
      const first = Math.floor(offset / rec.recordBytes);
      const last = Math.floor((offset + length - 1) / rec.recordBytes);
      const store = db.transaction(CHUNKS, "readonly").objectStore(CHUNKS);
      const records = await Promise.all(Array.from({ length: last - first + 1 }, (_, i) => request(store.get([rec.blob, first + i])) as Promise<Uint8Array | undefined>));
      records.forEach((r, i) => {
        // Gone when a commit replaced this version while it was open: the reader must reopen.
        if (!r) throw new CorruptCheckpointError(`${path} changed while it was being read (record ${first + i} is gone); load it again.`, { subject: path });
        const start = (first + i) * rec.recordBytes;
        const from = Math.max(offset, start);
        const to = Math.min(offset + length, start + r.byteLength);
        out.set(r.subarray(from - start, to - start), from - offset);
      });
      return out;
    });
  }

  async openWrite(path: string): Promise<AtomicWrite> {
    const key = norm(path);
    if (key === "") throw new SavepointError(`cannot write a checkpoint at the storage root; give a file name.`, { subject: path });
    const db = await this.#open();
    const blob = `${key}#${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
    const fail = (err: unknown) => new CheckpointWriteError(`writing ${path} to IndexedDB failed: ${(err as Error).message}. The previous checkpoint is intact; free storage (navigator.storage.estimate()) and retry.`, { cause: err, subject: path });
    await putEach(db, [[PENDING, blob, { path: key, touchedMs: Date.now() } satisfies Pending]]).catch((err: unknown) => {
      throw fail(err);
    });
    const size = this.#recordBytes;
    let buffer = new Uint8Array(size);
    let filled = 0;
    let index = 0;
    let position = 0;
    let state: "open" | "done" = "open";
    const flush = async () => {
      if (filled === 0) return;
      // The pending mark is refreshed with each record, so a live write is never swept as stale.
      await putEach(db, [
        [CHUNKS, [blob, index++], buffer.slice(0, filled)],
        [PENDING, blob, { path: key, touchedMs: Date.now() } satisfies Pending],
      ]);
      filled = 0;
    };
    const discard = async () => {
      const tx = db.transaction([CHUNKS, PENDING], "readwrite");
      tx.objectStore(CHUNKS).delete(versionRange(blob));
      tx.objectStore(PENDING).delete(blob);
      await done(tx).catch(() => {});
    };
    return {
      get position() {
        return position;
      },
      async write(chunk) {
        if (state !== "open") throw new SavepointError(`write to ${path} after commit or abort.`);
        try {
          for (let off = 0; off < chunk.byteLength; ) {
            const n = Math.min(size - filled, chunk.byteLength - off);
            buffer.set(chunk.subarray(off, off + n), filled);
            filled += n;
            off += n;
            if (filled === size) await flush();
          }
        } catch (err) {
          throw fail(err);
        }
        position += chunk.byteLength;
      },
      async commit() {
        if (state !== "open") throw new SavepointError(`commit of ${path} twice.`);
        state = "done";
        try {
          await flush();
          buffer = new Uint8Array(0);
          const tx = db.transaction([FILES, CHUNKS, PENDING], "readwrite");
          const files = tx.objectStore(FILES);
          const old = (await request(files.get(key))) as FileRecord | undefined;
          if (old) tx.objectStore(CHUNKS).delete(versionRange(old.blob));
          files.put({ size: position, mtimeMs: Date.now(), blob, recordBytes: size } satisfies FileRecord, key);
          tx.objectStore(PENDING).delete(blob);
          await done(tx);
        } catch (err) {
          await discard();
          throw fail(err);
        }
      },
      async abort() {
        if (state === "done") return;
        state = "done";
        await discard();
      },
    };
  }

  async list(dir: string): Promise<string[]> {
    const key = norm(dir);
    const db = await this.#open();
    const keys = (await request(db.transaction(FILES, "readonly").objectStore(FILES).getAllKeys(under(key)))) as string[];
    const prefix = key === "" ? "" : `${key}/`;
    return [...new Set(keys.map((k) => k.slice(prefix.length).split("/")[0]!))].sort();
  }

  async remove(path: string): Promise<void> {
    const key = norm(path);
    if (key === "") throw new SavepointError(`refusing to remove the storage root.`, { subject: path });
    const db = await this.#open();
    const tx = db.transaction([FILES, CHUNKS], "readwrite");
    const files = tx.objectStore(FILES);
    const exact = (await request(files.get(key))) as FileRecord | undefined;
    const inside = (await request(files.getAll(under(key)))) as FileRecord[];
    for (const rec of exact ? [exact, ...inside] : inside) tx.objectStore(CHUNKS).delete(versionRange(rec.blob));
    files.delete(key);
    files.delete(under(key));
    await done(tx);
  }

  async mkdir(): Promise<void> {
    // Folders are implicit in the keys.
  }

  /** Moves a file (or every file under a folder) in one transaction: atomic, and no bytes copied. */
  async rename(from: string, to: string): Promise<void> {
    const src = norm(from);
    const dst = norm(to);
    const db = await this.#open();
    const tx = db.transaction([FILES, CHUNKS], "readwrite");
    const files = tx.objectStore(FILES);
    const moves: Array<[string, FileRecord]> = [];
    const exact = (await request(files.get(src))) as FileRecord | undefined;
    if (exact) moves.push([dst, exact]);
    else {
      const keys = (await request(files.getAllKeys(under(src)))) as string[];
      const recs = (await request(files.getAll(under(src)))) as FileRecord[];
      keys.forEach((k, i) => moves.push([dst + k.slice(src.length), recs[i]!]));
    }
    if (moves.length === 0) {
      tx.abort();
      throw new CheckpointNotFoundError(`cannot rename ${from}: nothing is there.`, { subject: from });
    }
    const replaced = [(await request(files.get(dst))) as FileRecord | undefined, ...((await request(files.getAll(under(dst)))) as FileRecord[])];
    for (const rec of replaced) if (rec) tx.objectStore(CHUNKS).delete(versionRange(rec.blob));
    files.delete(dst);
    files.delete(under(dst));
    files.delete(src);
    files.delete(under(src));
    for (const [k, rec] of moves) files.put(rec, k);
    await done(tx);
  }

  /**
   * Opens the database once, deleting the records of writes that stopped without committing. A
   * write counts as stopped when it stored nothing for {@link STALE_MS}: another tab or worker may
   * be writing right now.
   */
  #open(): Promise<IDBDatabase> {
    this.#db ??= openDatabase(this.#name, STORES)
      .then(async (db) => {
        const tx = db.transaction([CHUNKS, PENDING], "readwrite");
        const pending = tx.objectStore(PENDING);
        const blobs = (await request(pending.getAllKeys())) as string[];
        const marks = (await request(pending.getAll())) as Pending[];
        blobs.forEach((blob, i) => {
          if (Date.now() - (marks[i]?.touchedMs ?? 0) < STALE_MS) return;
          tx.objectStore(CHUNKS).delete(versionRange(blob));
          pending.delete(blob);
        });
        await done(tx);
        return db;
      })
      .catch((err: unknown) => {
        this.#db = null;
        throw new SavepointError(`IndexedDB is not available here: ${(err as Error).message}.`, { cause: err });
      });
    return this.#db;
  }
}

/** Puts each `[store, key, value]` in one transaction. */
async function putEach(db: IDBDatabase, entries: Array<[string, IDBValidKey, unknown]>): Promise<void> {
  const tx = db.transaction([...new Set(entries.map((e) => e[0]))], "readwrite");
  for (const [store, key, value] of entries) tx.objectStore(store).put(value, key);
  await done(tx);
}

function norm(path: string): string {
  return pathParts(path).join("/");
}

/** Keys strictly inside folder `key`. */
function under(key: string): IDBKeyRange {
  const prefix = key === "" ? "" : `${key}/`;
  return IDBKeyRange.bound(prefix, `${prefix}\uffff`, false, false);
}

/** Every record of one stored version. */
function versionRange(blob: string): IDBKeyRange {
  return IDBKeyRange.bound([blob, 0], [blob, Number.MAX_SAFE_INTEGER]);
}
