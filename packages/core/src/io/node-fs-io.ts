import { constants, promises as fs } from "node:fs";
import { randomBytes } from "node:crypto";
import { CheckpointNotFoundError, CheckpointWriteError, CorruptCheckpointError, SavepointError } from "../errors.js";
import type { AtomicWrite, ByteSource } from "./byte-source.js";
import { BufferedSink } from "./buffered-sink.js";
import type { CheckpointIO, PathInfo } from "./checkpoint-io.js";
import { basename, dirname, joinPath } from "./paths.js";

const TMP_MARK = ".savepoint-tmp-";

/**
 * Local files. A save goes to a temporary file in the same folder, is fsynced, then renamed over
 * the target (and the folder fsynced), so a crash at any instant leaves the previous checkpoint.
 * Temporary files left by processes that died are removed by the next save to that folder.
 *
 * @example
 * ```ts
 * const fabric = new Fabric({ io: new NodeFileIO() });
 * ```
 */
export class NodeFileIO implements CheckpointIO {
  readonly name = "local files";

  async stat(path: string): Promise<PathInfo | null> {
    try {
      const s = await fs.stat(path);
      return { kind: s.isDirectory() ? "directory" : "file", size: s.size, mtimeMs: s.mtimeMs };
    } catch (err) {
      if (code(err) === "ENOENT" || code(err) === "ENOTDIR") return null;
      throw ioError(err, path, "read");
    }
  }

  async openRead(path: string): Promise<ByteSource> {
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(path, constants.O_RDONLY);
    } catch (err) {
      if (code(err) === "ENOENT") throw new CheckpointNotFoundError(`no checkpoint at ${path}: the file does not exist. Check the path (relative paths resolve from ${process.cwd()}).`, { subject: path });
      throw ioError(err, path, "read");
    }
    const st = await handle.stat();
    if (st.isDirectory()) {
      await handle.close();
      throw new CheckpointNotFoundError(`${path} is a directory, not a checkpoint file. Pass the checkpoint file inside it, or a directory checkpoint savepoint can read.`, { subject: path });
    }
    return new FileSource(handle, path, st.size);
  }

  async openWrite(path: string): Promise<AtomicWrite> {
    const dir = dirname(path);
    try {
      await fs.mkdir(dir, { recursive: true });
    } catch (err) {
      throw ioError(err, path, "write");
    }
    const existing = await this.stat(path);
    if (existing?.kind === "directory") {
      throw new CheckpointWriteError(`cannot save to ${path}: a directory is there. Choose another path or remove the directory.`, { subject: path });
    }
    await removeStaleTemporaries(dir, basename(path));
    const tmp = joinPath(dir, `.${basename(path)}${TMP_MARK}${process.pid}-${randomBytes(4).toString("hex")}`);
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(tmp, "wx");
    } catch (err) {
      throw ioError(err, path, "write");
    }
    return new AtomicFileWrite(handle, tmp, path);
  }

  async list(dir: string): Promise<string[]> {
    try {
      return (await fs.readdir(dir)).sort();
    } catch (err) {
      if (code(err) === "ENOENT") throw new CheckpointNotFoundError(`no directory at ${dir}.`, { subject: dir });
      throw ioError(err, dir, "read");
    }
  }

  async remove(path: string): Promise<void> {
    try {
      await fs.rm(path, { recursive: true, force: true });
    } catch (err) {
      throw ioError(err, path, "write");
    }
  }

  async mkdir(dir: string): Promise<void> {
    try {
      await fs.mkdir(dir, { recursive: true });
    } catch (err) {
      throw ioError(err, dir, "write");
    }
  }

  async rename(from: string, to: string): Promise<void> {
    try {
      await fs.rename(from, to);
    } catch (err) {
      throw ioError(err, to, "write");
    }
  }
}

class FileSource implements ByteSource {
  #closed = false;
  constructor(
    readonly handle: fs.FileHandle,
    readonly name: string,
    readonly size: number,
  ) {}

  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    if (this.#closed) throw new SavepointError(`read from ${this.name} after it was closed.`);
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new CorruptCheckpointError(`${this.name} is truncated or damaged: a record claims bytes [${offset}, ${offset + length}) but the file has ${this.size} bytes.`, { subject: this.name });
    }
    const out = into ?? new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.handle.read(out, done, Math.min(length - done, 1 << 30), offset + done);
      if (bytesRead === 0) throw new CorruptCheckpointError(`${this.name} ended early at byte ${offset + done} (was it truncated while being read?).`, { subject: this.name });
      done += bytesRead;
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.handle.close();
  }
}

class AtomicFileWrite implements AtomicWrite {
  readonly #sink: BufferedSink;
  #state: "open" | "committed" | "aborted" = "open";

  constructor(
    readonly handle: fs.FileHandle,
    readonly tmp: string,
    readonly target: string,
  ) {
    this.#sink = new BufferedSink(async (chunk) => {
      let done = 0;
      while (done < chunk.byteLength) {
        const { bytesWritten } = await this.handle.write(chunk, done, chunk.byteLength - done);
        done += bytesWritten;
      }
    }, 4 << 20);
  }

  get position(): number {
    return this.#sink.position;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.#state !== "open") throw new SavepointError(`write to ${this.target} after the save was ${this.#state}.`);
    try {
      await this.#sink.write(chunk);
    } catch (err) {
      await this.abort();
      throw ioError(err, this.target, "write");
    }
  }

  async commit(): Promise<void> {
    if (this.#state !== "open") throw new SavepointError(`commit of ${this.target} after the save was ${this.#state}.`);
    try {
      await this.#sink.flush();
      await this.handle.sync();
      await this.handle.close();
      await fs.rename(this.tmp, this.target);
      this.#state = "committed";
    } catch (err) {
      await this.abort();
      throw ioError(err, this.target, "write");
    }
    await syncDirectory(dirname(this.target));
  }

  async abort(): Promise<void> {
    if (this.#state !== "open") return;
    this.#state = "aborted";
    await this.handle.close().catch(() => {});
    await fs.rm(this.tmp, { force: true }).catch(() => {});
  }
}

async function syncDirectory(dir: string): Promise<void> {
  // Makes the rename itself durable; some file systems refuse to open directories, which is fine.
  try {
    const h = await fs.open(dir, constants.O_RDONLY);
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  } catch {
    /* not supported here */
  }
}

/** Removes temporaries of `name` in `dir` whose writing process is gone. */
async function removeStaleTemporaries(dir: string, name: string): Promise<void> {
  let entries: string[];
  try {
    entries = await fs.readdir(dir);
  } catch {
    return;
  }
  const prefix = `.${name}${TMP_MARK}`;
  for (const e of entries) {
    if (!e.startsWith(prefix)) continue;
    const pid = Number(e.slice(prefix.length).split("-")[0]);
    // Never touch a temporary another live process (or this one) is still writing.
    if (Number.isInteger(pid) && (pid === process.pid || isAlive(pid))) continue;
    await fs.rm(joinPath(dir, e), { force: true }).catch(() => {});
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return code(err) === "EPERM";
  }
}

function code(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

function ioError(err: unknown, path: string, action: "read" | "write"): SavepointError {
  if (err instanceof SavepointError) return err;
  const c = code(err);
  const fix =
    c === "ENOSPC" || c === "EDQUOT"
      ? "the disk is full: free space or save elsewhere; the previous checkpoint is intact and the partial file was removed."
      : c === "EACCES" || c === "EPERM" || c === "EROFS"
        ? `permission denied: make the folder ${action === "write" ? "writable" : "readable"} or choose another path.`
        : c === "ENOTDIR"
          ? "a part of the path is a file, not a folder."
          : `${(err as Error).message}.`;
  const Cls = action === "write" ? CheckpointWriteError : SavepointError;
  return new Cls(`cannot ${action} ${path}: ${fix}`, { cause: err, subject: path });
}
