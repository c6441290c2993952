import { CheckpointNotFoundError, SavepointError } from "../errors.js";
import type { AtomicWrite, ByteSource } from "./byte-source.js";
import type { CheckpointIO, PathInfo } from "./checkpoint-io.js";
import { boundedSource } from "./bounded-source.js";

/**
 * Checkpoints in memory: for tests, and for handing a checkpoint between parts of one program.
 * Writes become visible only on commit, like on disk.
 *
 * @example
 * ```ts
 * const io = new MemoryIO();
 * const fabric = new Fabric({ io });
 * await fabric.save("a.ckpt", { step: 1 });
 * io.files.get("a.ckpt"); // the bytes
 * ```
 */
export class MemoryIO implements CheckpointIO {
  readonly name = "memory";
  /** Committed files by normalised path. */
  readonly files = new Map<string, Uint8Array>();
  /** Bytes handed out by `read` calls, for tests of partial loading. */
  bytesRead = 0;

  async stat(path: string): Promise<PathInfo | null> {
    const p = norm(path);
    const f = this.files.get(p);
    if (f) return { kind: "file", size: f.byteLength };
    const prefix = p === "" ? "" : `${p}/`;
    for (const k of this.files.keys()) if (k.startsWith(prefix)) return { kind: "directory", size: 0 };
    return null;
  }

  async openRead(path: string): Promise<ByteSource> {
    const p = norm(path);
    const data = this.files.get(p);
    if (!data) {
      const st = await this.stat(p);
      throw new CheckpointNotFoundError(st ? `${path} is a directory, not a checkpoint file.` : `no checkpoint at ${path} in memory.`, { subject: path });
    }
    return boundedSource(path, data.byteLength, async (offset, length, into) => {
      this.bytesRead += length;
      const view = data.subarray(offset, offset + length);
      // A copy when the caller gives no buffer: the file's bytes are never handed out to be changed.
      return into ? view : view.slice();
    });
  }

  async openWrite(path: string): Promise<AtomicWrite> {
    const p = norm(path);
    const parts: Uint8Array[] = [];
    let position = 0;
    let state: "open" | "done" = "open";
    const files = this.files;
    return {
      get position() {
        return position;
      },
      async write(chunk) {
        if (state !== "open") throw new SavepointError(`write to ${path} after commit or abort.`);
        parts.push(chunk.slice());
        position += chunk.byteLength;
      },
      async commit() {
        if (state !== "open") throw new SavepointError(`commit of ${path} twice.`);
        state = "done";
        const out = new Uint8Array(position);
        let off = 0;
        for (const c of parts) {
          out.set(c, off);
          off += c.byteLength;
        }
        files.set(p, out);
      },
      async abort() {
        state = "done";
      },
    };
  }

  async list(dir: string): Promise<string[]> {
    const prefix = norm(dir) === "" ? "" : `${norm(dir)}/`;
    const names = new Set<string>();
    for (const k of this.files.keys()) if (k.startsWith(prefix)) names.add(k.slice(prefix.length).split("/")[0]!);
    return [...names].sort();
  }

  async remove(path: string): Promise<void> {
    const p = norm(path);
    for (const k of [...this.files.keys()]) if (k === p || k.startsWith(`${p}/`)) this.files.delete(k);
  }

  async mkdir(): Promise<void> {}

  async rename(from: string, to: string): Promise<void> {
    const f = norm(from);
    const t = norm(to);
    await this.remove(t);
    for (const [k, v] of [...this.files]) {
      if (k === f || k.startsWith(`${f}/`)) {
        this.files.delete(k);
        this.files.set(t + k.slice(f.length), v);
      }
    }
  }
}

function norm(path: string): string {
  return path.replace(/\/{2,}/g, "/").replace(/^\.\//, "").replace(/\/$/, "");
}
