import { constants, promises as fs } from "node:fs";
import { createHash, randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { CheckpointNotFoundError, CheckpointWriteError, CorruptCheckpointError, SavepointError } from "../errors.js";
import type { AtomicWrite, ByteSource } from "./byte-source.js";
import { BufferedSink } from "./buffered-sink.js";
import type { CheckpointIO, PathInfo } from "./checkpoint-io.js";
import { basename, dirname, joinPath } from "./paths.js";

const TMP_MARK = ".savepoint-tmp-";
/**
 * Temporaries carry the machine's tag: a pid means nothing on another host sharing the folder.
 * Computed on first use, so that importing core (browser bundles do) calls nothing from Node.
 */
let hostTag: string | undefined;
const HOST_TAG = (): string => (hostTag ??= createHash("sha256").update(hostname()).digest("hex").slice(0, 8));

/**
 * Local files. A save goes to a temporary file in the same folder, is fsynced, then renamed over
 * the target (and the folder fsynced), so a crash at any instant leaves the previous checkpoint.
 * Temporary files left by processes that died (on this machine) are removed by the next save to
 * that folder, whatever file they were for.
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
    if (existing?.kind === "file") await refuseReadOnly(path);
    await removeStaleTemporaries(dir);
    const tmp = joinPath(dir, `.${basename(path)}${TMP_MARK}${process.pid}-${randomBytes(4).toString("hex")}-${HOST_TAG()}`);
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

  async realPath(path: string): Promise<string> {
    try {
      return await fs.realpath(path);
    } catch (err) {
      if (code(err) === "ENOENT") throw new CheckpointNotFoundError(`nothing exists at ${path}.`, { subject: path });
      throw ioError(err, path, "read");
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

/** Reads up to this size are served from read-ahead blocks (see FileSource.#readSmall). */
const SMALL_READ = 16 << 10;
const READ_AHEAD_BLOCK = 256 << 10;
/** Settled blocks kept for later small reads; blocks still being read are kept on top of these. */
const READ_AHEAD_BLOCKS = 8;

interface CachedBlock {
  readonly start: number;
  readonly end: number;
  readonly bytes: Uint8Array;
  /** Set while the block is being read; small reads inside it wait for it. */
  loading?: Promise<void>;
  /** Reads waiting to copy out of the block: its buffer is not recycled meanwhile. */
  readers: number;
}

/** Bytes `[offset, offset + length)` of a settled block: into `into`, or a copy. */
function copyOut(block: CachedBlock, offset: number, length: number, into: Uint8Array | undefined): Uint8Array {
  const view = block.bytes.subarray(offset - block.start, offset - block.start + length);
  if (into) {
    into.set(view);
    return into;
  }
  return view.slice();
}

class FileSource implements ByteSource {
  #closed = false;
  #blocks: CachedBlock[] = [];
  #spareBlocks: Uint8Array[] = [];
  constructor(
    readonly handle: fs.FileHandle,
    readonly name: string,
    readonly size: number,
  ) {}

  // Not `async`: a small read from a block already read settles without the extra turns an async
  // wrapper costs, which thousands of small tensors per load add up to. Errors still reject.
  read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new SavepointError(`read from ${this.name} after it was closed.`));
    if (offset < 0 || length < 0 || offset + length > this.size) {
      return Promise.reject(new CorruptCheckpointError(`${this.name} is truncated or damaged: a record claims bytes [${offset}, ${offset + length}) but the file has ${this.size} bytes.`, { subject: this.name }));
    }
    if (length <= SMALL_READ) return this.#readSmall(offset, length, into);
    return this.#readFully(offset, length, into ?? new Uint8Array(length));
  }

  async #readFully(offset: number, length: number, out: Uint8Array): Promise<Uint8Array> {
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.handle.read(out, done, Math.min(length - done, 1 << 30), offset + done);
      if (bytesRead === 0) throw new CorruptCheckpointError(`${this.name} ended early at byte ${offset + done} (was it truncated while being read?).`, { subject: this.name });
      done += bytesRead;
    }
    return out;
  }

  /**
   * Small reads (zip headers, tiny records) come in long runs of nearby offsets; each is served
   * from a block read ahead from the first of them, so a file of thousands of entries costs a few
   * hundred reads instead of one per header. A block is read through the thread pool, never
   * synchronously: on a cold cache a synchronous read would stall everything else for a disk
   * round trip, while concurrent small reads (a zip directory's headers, a load reading ahead)
   * keep several blocks in flight and share the one that covers them. Bytes are copied out, so
   * the few block buffers are recycled and never exposed.
   */
  #readSmall(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    let block: CachedBlock | undefined;
    for (const b of this.#blocks) {
      if (b.start <= offset && offset + length <= b.end) {
        block = b;
        break;
      }
    }
    block ??= this.#startBlock(offset);
    if (!block.loading) return Promise.resolve(copyOut(block, offset, length, into));
    const settled = block;
    settled.readers++;
    return settled.loading!.then(
      () => {
        settled.readers--;
        return copyOut(settled, offset, length, into);
      },
      (err: unknown) => {
        settled.readers--;
        throw err;
      },
    );
  }

  #startBlock(offset: number): CachedBlock {
    // Evict the oldest settled blocks beyond the budget; their buffers are reused. A block still
    // loading, or with readers about to copy out of it, is kept.
    const free = (b: CachedBlock) => !b.loading && b.readers === 0;
    let settled = this.#blocks.filter(free).length;
    for (let i = 0; i < this.#blocks.length && settled >= READ_AHEAD_BLOCKS; ) {
      if (!free(this.#blocks[i]!)) {
        i++;
        continue;
      }
      this.#spareBlocks.push(this.#blocks.splice(i, 1)[0]!.bytes);
      settled--;
    }
    const end = Math.min(this.size, offset + READ_AHEAD_BLOCK);
    const block: CachedBlock = { start: offset, end, bytes: this.#spareBlocks.pop() ?? new Uint8Array(READ_AHEAD_BLOCK), readers: 0 };
    this.#blocks.push(block);
    block.loading = this.#readFully(offset, end - offset, block.bytes.subarray(0, end - offset)).then(
      () => {
        block.loading = undefined;
      },
      (err: unknown) => {
        // A failed block is forgotten, so the next read of these bytes tries again.
        const at = this.#blocks.indexOf(block);
        if (at >= 0) this.#blocks.splice(at, 1);
        throw err;
      },
    );
    return block;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.handle.close();
  }
}

/**
 * Every this many bytes a save starts writing back what it has written so far (an fdatasync it
 * does not wait for), so the disk works while the rest is produced and the fsync at commit only
 * waits for the tail, instead of for the whole file.
 */
const WRITEBACK_STEP = 64 << 20;

class AtomicFileWrite implements AtomicWrite {
  readonly #sink: BufferedSink;
  #state: "open" | "committed" | "aborted" = "open";
  #unsynced = 0;
  #writeback: Promise<unknown> | undefined;
  #writebackError: unknown;

  constructor(
    readonly handle: fs.FileHandle,
    readonly tmp: string,
    readonly target: string,
  ) {
    // Positional writes: several big chunks can be under way at once, each landing at its offset.
    const writeAt = async (chunk: Uint8Array, position: number, from = 0): Promise<void> => {
      let done = from;
      while (done < chunk.byteLength) {
        const { bytesWritten } = await this.handle.write(chunk, done, chunk.byteLength - done, position + done);
        done += bytesWritten;
        this.#wrote(bytesWritten);
      }
    };
    const writevAt = async (chunks: Uint8Array[], position: number): Promise<void> => {
      let { bytesWritten } = await this.handle.writev(chunks, position);
      this.#wrote(bytesWritten);
      // A short writev (rare) finishes chunk by chunk.
      let at = position;
      for (const c of chunks) {
        if (bytesWritten < c.byteLength) await writeAt(c, at, bytesWritten);
        bytesWritten = Math.max(0, bytesWritten - c.byteLength);
        at += c.byteLength;
      }
    };
    this.#sink = new BufferedSink((chunk, position) => writeAt(chunk, position), 4 << 20, writevAt);
  }

  get position(): number {
    return this.#sink.position;
  }

  /**
   * Writes of at least this many bytes may be issued before earlier ones finish (they are
   * positional and never touch the coalescing buffer); ZipWriter overlaps such writes.
   */
  get concurrentWriteBytes(): number {
    return this.#sink.passThroughBytes;
  }

  #wrote(bytes: number): void {
    this.#unsynced += bytes;
    if (this.#unsynced < WRITEBACK_STEP || this.#writeback) return;
    this.#unsynced = 0;
    // Linux reports a writeback error to a file descriptor once: keep it for commit to throw.
    this.#writeback = this.handle.datasync().then(
      () => (this.#writeback = undefined),
      (err: unknown) => {
        this.#writeback = undefined;
        this.#writebackError ??= err;
      },
    );
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
      await this.#writeback;
      if (this.#writebackError !== undefined) throw this.#writebackError;
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

/**
 * Removes the temporaries in `dir` whose writing process is gone, whatever their target: a save
 * killed on its way to `step-100.ckpt` is cleaned up by the save of `step-200.ckpt`.
 */
async function removeStaleTemporaries(dir: string): Promise<void> {
  let entries: string[];
  try {
    entries = await fs.readdir(dir);
  } catch {
    return;
  }
  for (const e of entries) {
    const at = e.lastIndexOf(TMP_MARK);
    if (!e.startsWith(".") || at < 0) continue;
    const [pidText, , host] = e.slice(at + TMP_MARK.length).split("-");
    const pid = Number(pidText);
    // Never touch a temporary another live process (or this one) is still writing, nor one from
    // another machine, whose processes we cannot see.
    if (host !== undefined && host !== HOST_TAG()) continue;
    if (Number.isInteger(pid) && (pid === process.pid || isAlive(pid))) continue;
    await fs.rm(joinPath(dir, e), { force: true }).catch(() => {});
  }
}

/**
 * The rename would replace a read-only file without complaint (rename needs only the folder's
 * permission); torch.save refuses such a file, and so do we.
 */
async function refuseReadOnly(path: string): Promise<void> {
  try {
    await fs.access(path, constants.W_OK);
  } catch (err) {
    if (code(err) === "ENOENT") return;
    throw new CheckpointWriteError(`cannot write ${path}: the file is read-only (${code(err) ?? "not writable"}). Make it writable (chmod u+w) or save elsewhere; it was left unchanged.`, { cause: err, subject: path });
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
      : c === "EROFS"
        ? "the file system is read-only: remount it read-write or choose another path."
        : c === "EACCES" || c === "EPERM"
          ? `permission denied: make the folder ${action === "write" ? "writable" : "readable"} or choose another path.`
          : c === "ENOTDIR"
            ? "a part of the path is a file, not a folder."
            : `${(err as Error).message}.`;
  const Cls = action === "write" ? CheckpointWriteError : SavepointError;
  return new Cls(`cannot ${action} ${path}: ${fix}`, { cause: err, subject: path });
}
