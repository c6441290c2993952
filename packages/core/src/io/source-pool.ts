import { CorruptCheckpointError } from "../errors.js";
import type { ByteSource } from "./byte-source.js";
import type { CheckpointIO } from "./checkpoint-io.js";

/**
 * Opens checkpoint files for lazy tensors. While a load is in progress (`hold`), each file stays
 * open and is shared; afterwards a tensor touched later opens its file for that read only, so a
 * raw checkpoint kept around by the caller holds no file descriptors. A file whose size changed
 * since it was first opened is reported instead of read.
 */
export class SourcePool {
  readonly #io: CheckpointIO;
  readonly #open = new Map<string, Promise<ByteSource>>();
  #holds = 0;

  constructor(io: CheckpointIO) {
    this.#io = io;
  }

  /** Runs `fn` with files kept open, closing them when the last holder is done. */
  async hold<T>(fn: () => Promise<T>): Promise<T> {
    this.#holds++;
    try {
      return await fn();
    } finally {
      if (--this.#holds === 0) await this.#closeAll();
    }
  }

  /** A source for `path` that reopens on demand. */
  async get(path: string): Promise<ByteSource> {
    const first = await this.#acquire(path);
    const size = first.size;
    const pool = this;
    const source: ByteSource = {
      name: first.name,
      size,
      async read(offset, length, into) {
        // Outside a load each read opens its own handle, so concurrent reads never share one
        // that another read is closing.
        const held = pool.#holds > 0;
        const real = held ? await pool.#acquire(path) : await pool.#io.openRead(path);
        try {
          if (real.size !== size) {
            throw new CorruptCheckpointError(`${path} changed size since it was opened (${size} → ${real.size} bytes); it was overwritten while being read. Load it again.`, { subject: path });
          }
          return await real.read(offset, length, into);
        } finally {
          if (!held) await real.close();
        }
      },
      async close() {
        /* the pool owns the handle */
      },
    };
    if (this.#holds === 0) await this.#closeAll();
    return source;
  }

  #acquire(path: string): Promise<ByteSource> {
    let p = this.#open.get(path);
    if (!p) {
      p = this.#io.openRead(path);
      this.#open.set(path, p);
      p.catch(() => this.#open.delete(path));
    }
    return p;
  }

  async #closeAll(): Promise<void> {
    const all = [...this.#open.values()];
    this.#open.clear();
    await Promise.all(all.map((p) => p.then((s) => s.close(), () => {})));
  }
}
