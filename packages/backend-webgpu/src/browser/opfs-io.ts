import { boundedSource, CheckpointNotFoundError, CheckpointWriteError, SavepointError, type AtomicWrite, type ByteSource, type CheckpointIO, type PathInfo } from "@savepoint/core";
import { isMissing, opfsRoot, type OpfsDirectoryHandle, type OpfsFileHandle } from "./opfs-types.js";
import { pathParts, tempName, TMP_MARK } from "./path-parts.js";

/** Options of {@link OpfsIO}. */
export interface OpfsIOOptions {
  /** The folder checkpoint paths are relative to. @default the origin's OPFS root */
  root?: OpfsDirectoryHandle | Promise<OpfsDirectoryHandle>;
  /**
   * Write through sync access handles where the browser offers them (dedicated workers): no
   * promise per chunk, no swap file. Elsewhere writes use writable streams. @default true
   */
  syncAccess?: boolean;
}

/**
 * Checkpoints in the Origin Private File System. A write streams into a temporary file beside the
 * target and is moved over it on commit, which replaces the old file in one step: until then the
 * previous checkpoint is what every reader sees, and an abandoned write (a closed tab) never
 * becomes visible. In a dedicated worker writes go through sync access handles; on the main
 * thread through writable streams. Reads are ranged slices of a `File` snapshot.
 *
 * @example
 * ```ts
 * const fabric = new Fabric({ backend: webgpuBackend(), io: new OpfsIO() });
 * await fabric.save("runs/latest.ckpt", { model, optimizer, step });
 * ```
 */
export class OpfsIO implements CheckpointIO {
  readonly name = "browser OPFS";
  readonly #root: Promise<OpfsDirectoryHandle>;
  readonly #syncAccess: boolean;

  constructor(options: OpfsIOOptions = {}) {
    this.#root = Promise.resolve(options.root ?? opfsRoot()).then((r) => {
      if (!r) throw new SavepointError(`this browser offers no Origin Private File System (navigator.storage.getDirectory); use IndexedDbIO, or browserCheckpointIO() to pick what is available.`);
      return r;
    });
    this.#syncAccess = options.syncAccess ?? true;
  }

  async stat(path: string): Promise<PathInfo | null> {
    const parts = pathParts(path);
    if (parts.length === 0) return { kind: "directory", size: 0 };
    const dir = await this.#dir(parts.slice(0, -1), false);
    if (!dir) return null;
    const name = parts[parts.length - 1]!;
    try {
      const file = await (await dir.getFileHandle(name)).getFile();
      return { kind: "file", size: file.size, mtimeMs: file.lastModified };
    } catch (err) {
      if (!isMissing(err)) throw err;
    }
    try {
      await dir.getDirectoryHandle(name);
      return { kind: "directory", size: 0 };
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  async openRead(path: string): Promise<ByteSource> {
    const handle = await this.#file(path);
    if (!handle) {
      const st = await this.stat(path);
      throw new CheckpointNotFoundError(st ? `${path} is a directory, not a checkpoint file.` : `no checkpoint at ${path} in this origin's private file system.`, { subject: path });
    }
    // A snapshot: a commit replacing the file meanwhile does not change what this reader sees.
    const file = await handle.getFile();
    return boundedSource(path, file.size, async (offset, length) => new Uint8Array(await file.slice(offset, offset + length).arrayBuffer()));
  }

  async openWrite(path: string): Promise<AtomicWrite> {
    const parts = pathParts(path);
    if (parts.length === 0) throw new SavepointError(`cannot write a checkpoint at the storage root; give a file name.`, { subject: path });
    const dir = (await this.#dir(parts.slice(0, -1), true))!;
    const name = parts[parts.length - 1]!;
    const tmpName = tempName(name);
    const tmp = await dir.getFileHandle(tmpName, { create: true });
    const fail = (err: unknown, what: string) => new CheckpointWriteError(`writing ${path} to the browser's private file system failed (${what}): ${(err as Error).message}. The previous checkpoint is intact; free storage (navigator.storage.estimate()) and retry.`, { cause: err, subject: path });
    const sink = this.#syncAccess && typeof tmp.createSyncAccessHandle === "function" ? await syncSink(tmp) : await streamSink(tmp);
    let position = 0;
    let state: "open" | "done" = "open";
    const discard = async () => {
      await sink.abort().catch(() => {});
      await dir.removeEntry(tmpName).catch(() => {});
    };
    return {
      get position() {
        return position;
      },
      async write(chunk) {
        if (state !== "open") throw new SavepointError(`write to ${path} after commit or abort.`);
        try {
          await sink.write(chunk, position);
        } catch (err) {
          throw fail(err, "write");
        }
        position += chunk.byteLength;
      },
      async commit() {
        if (state !== "open") throw new SavepointError(`commit of ${path} twice.`);
        state = "done";
        try {
          await sink.close();
          if (typeof tmp.move !== "function") throw new Error("FileSystemHandle.move() is not supported by this browser");
          await tmp.move(dir, name); // replaces an existing file in one step
        } catch (err) {
          await discard();
          throw fail(err, "commit");
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
    const handle = await this.#dir(pathParts(dir), false);
    if (!handle) return [];
    const names: string[] = [];
    for await (const [name] of handle.entries()) if (!name.includes(TMP_MARK) && !name.endsWith(".crswap")) names.push(name);
    return names.sort();
  }

  async remove(path: string): Promise<void> {
    const parts = pathParts(path);
    if (parts.length === 0) throw new SavepointError(`refusing to remove the storage root.`, { subject: path });
    const dir = await this.#dir(parts.slice(0, -1), false);
    if (!dir) return;
    try {
      await dir.removeEntry(parts[parts.length - 1]!, { recursive: true });
    } catch (err) {
      if (!isMissing(err)) throw err;
    }
  }

  async mkdir(dir: string): Promise<void> {
    await this.#dir(pathParts(dir), true);
  }

  /** Files move atomically (replacing the target); folders move entry by entry, not atomically. */
  async rename(from: string, to: string): Promise<void> {
    const src = pathParts(from);
    const dst = pathParts(to);
    const srcDir = await this.#dir(src.slice(0, -1), false);
    const dstDir = (await this.#dir(dst.slice(0, -1), true))!;
    const file = srcDir ? await getFile(srcDir, src[src.length - 1]!) : null;
    if (file) {
      if (typeof file.move !== "function") throw new SavepointError(`this browser cannot rename files in its private file system (no FileSystemHandle.move).`);
      await file.move(dstDir, dst[dst.length - 1]!);
      return;
    }
    if (!(await this.stat(from))) throw new CheckpointNotFoundError(`cannot rename ${from}: nothing is there.`, { subject: from });
    await this.remove(to);
    await this.mkdir(to);
    for (const name of await this.list(from)) await this.rename(`${from}/${name}`, `${to}/${name}`);
    await this.remove(from);
  }

  async #dir(parts: string[], create: boolean): Promise<OpfsDirectoryHandle | null> {
    let dir = await this.#root;
    for (const p of parts) {
      try {
        dir = await dir.getDirectoryHandle(p, { create });
      } catch (err) {
        if (!create && isMissing(err)) return null;
        throw err;
      }
    }
    return dir;
  }

  async #file(path: string): Promise<OpfsFileHandle | null> {
    const parts = pathParts(path);
    if (parts.length === 0) return null;
    const dir = await this.#dir(parts.slice(0, -1), false);
    return dir ? getFile(dir, parts[parts.length - 1]!) : null;
  }
}

async function getFile(dir: OpfsDirectoryHandle, name: string): Promise<OpfsFileHandle | null> {
  try {
    return await dir.getFileHandle(name);
  } catch (err) {
    if (isMissing(err)) return null;
    throw err;
  }
}

/** Where the bytes of one write go. */
interface Sink {
  write(chunk: Uint8Array, at: number): Promise<void>;
  close(): Promise<void>;
  abort(): Promise<void>;
}

/** Sync access handle (workers): synchronous positioned writes, flushed before the move. */
async function syncSink(handle: OpfsFileHandle): Promise<Sink> {
  const h = await handle.createSyncAccessHandle!();
  let open = true;
  const closeOnce = () => {
    if (open) {
      open = false;
      h.close();
    }
  };
  return {
    async write(chunk, at) {
      let done = 0;
      while (done < chunk.byteLength) done += h.write(chunk.subarray(done), { at: at + done });
    },
    async close() {
      h.flush();
      closeOnce();
    },
    async abort() {
      closeOnce();
    },
  };
}

/** Writable stream (main thread): each write is awaited, so memory stays at one chunk. */
async function streamSink(handle: OpfsFileHandle): Promise<Sink> {
  const w = await handle.createWritable({ keepExistingData: false });
  return {
    // The caller may reuse `chunk` once the promise resolves; the stream has taken its bytes by then.
    write: (chunk) => w.write(chunk),
    close: () => w.close(),
    abort: () => w.abort(),
  };
}
