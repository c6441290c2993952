import { checkDepth, isPlainObject } from "../tree/plain.js";
import { copyMarks } from "../tree/python-values.js";
import { HostTensor } from "./stored-tensor.js";
import { isTensorSource, type TensorSource } from "./tensor-source.js";

/**
 * Host buffers for async saves: `stage` copies every tensor of a tree into host memory (so
 * training may change the originals while the write goes on), and `release` returns the buffers
 * for the next save, which reuses them when sizes match instead of allocating again.
 */
export class StagingPool {
  readonly #free = new Map<number, Uint8Array[]>();

  /** A copy of `tree` whose tensors are HostTensors over pooled buffers; call `release` after writing. */
  async stage(tree: unknown): Promise<{ tree: unknown; release(): void }> {
    const used: Uint8Array[] = [];
    const copies = new Map<TensorSource, HostTensor>();
    const visit = async (v: unknown, depth: number): Promise<unknown> => {
      checkDepth(depth, "state");
      if (isTensorSource(v)) {
        let copy = copies.get(v);
        if (!copy) {
          const buf = this.#take(v.byteLength);
          used.push(buf);
          let off = 0;
          for await (const chunk of v.chunks()) {
            buf.set(chunk, off);
            off += chunk.byteLength;
          }
          copy = new HostTensor(v.dtype, v.shape, buf);
          copies.set(v, copy);
        }
        return copy;
      }
      if (Array.isArray(v)) {
        const out: unknown[] = [];
        for (const x of v) out.push(await visit(x, depth + 1));
        return copyMarks(v, out);
      }
      if (isPlainObject(v)) {
        const out: Record<string, unknown> = {};
        for (const [k, x] of Object.entries(v)) out[k] = await visit(x, depth + 1);
        return copyMarks(v, out);
      }
      return v;
    };
    try {
      const staged = await visit(tree, 0);
      return { tree: staged, release: () => this.#give(used) };
    } catch (err) {
      this.#give(used);
      throw err;
    }
  }

  /** Bytes held for reuse. */
  get pooledBytes(): number {
    let n = 0;
    for (const [size, list] of this.#free) n += size * list.length;
    return n;
  }

  /** Drops every pooled buffer. */
  clear(): void {
    this.#free.clear();
  }

  #take(size: number): Uint8Array {
    return this.#free.get(size)?.pop() ?? new Uint8Array(size);
  }

  #give(buffers: Uint8Array[]): void {
    for (const b of buffers) {
      const list = this.#free.get(b.byteLength) ?? [];
      list.push(b);
      this.#free.set(b.byteLength, list);
    }
  }
}
