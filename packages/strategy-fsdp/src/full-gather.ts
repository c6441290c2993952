import { copyMarks, InvalidArgumentError, isPlainObject, isTensorSource, itemSize, LazyTensor, numel, type Backend, type Collective, type DType, type TensorSource } from "@savepoint/core";
import { LocalRows } from "./placed-state.js";

/** Tag of the requests rank 0 sends while writing a full checkpoint. */
const REQUEST = "fsdp full save: next tensor";

/** What rank 0 broadcasts: the next tensor to gather, or the end of the write. */
type Request = { key: string } | { done: true };

/** A rank's contribution to one gather: its rows' bytes, or why it has none. */
interface Part {
  bytes?: Uint8Array;
  error?: string;
}

async function bytesOf(source: TensorSource): Promise<Uint8Array> {
  const out = new Uint8Array(source.byteLength);
  let at = 0;
  for await (const c of source.chunks()) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/**
 * The full checkpoint of a sharded state, assembled on rank 0 one tensor at a time while it is
 * being written: each sharded tensor in the tree becomes a source that, when the writer reaches
 * it, asks every rank for its rows (a broadcast of the tensor's name, then an all-gather) and
 * streams them in rank order. So rank 0 holds one tensor at a time, never the model, and the
 * write's order (whatever the format) decides the order of the gathers. The other ranks answer in
 * {@link serveGathers} until rank 0 says the write is over.
 */
export class FullGather {
  readonly #collective: Collective;
  readonly #backend: Backend;
  readonly #timeoutMs: number;
  /** This rank's rows of every sharded tensor, by its path in the tree. */
  readonly #mine = new Map<string, LocalRows>();

  constructor(collective: Collective, backend: Backend, timeoutMs: number) {
    this.#collective = collective;
    this.#backend = backend;
    this.#timeoutMs = timeoutMs;
  }

  /** `tree` with every {@link LocalRows} replaced by a source of the whole tensor. */
  sources(tree: Record<string, unknown>): Record<string, unknown> {
    return this.#replace(tree, "") as Record<string, unknown>;
  }

  #replace(v: unknown, path: string): unknown {
    if (v instanceof LocalRows) {
      this.#mine.set(path, v);
      return this.#wholeSource(path, v);
    }
    if (Array.isArray(v)) {
      return copyMarks(v, v.map((x, i) => this.#replace(x, `${path}[${i}]`)));
    }
    if (isPlainObject(v) && !isTensorSource(v)) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = this.#replace(x, path === "" ? k : `${path}/${k}`);
      return copyMarks(v, out);
    }
    return v;
  }

  #local(rows: LocalRows): TensorSource {
    return isTensorSource(rows.local) ? rows.local : this.#backend.toSource(rows.local);
  }

  /**
   * The whole tensor, gathered when the writer reads its first byte and dropped after its last:
   * the writer reads a tensor from start to end, in pieces.
   */
  #wholeSource(key: string, rows: LocalRows): TensorSource {
    const dtype: DType = this.#local(rows).dtype;
    const byteLength = numel(rows.shape) * itemSize(dtype);
    let parts: { bytes: Uint8Array; at: number }[] | undefined;
    return new LazyTensor(dtype, rows.shape, async (offset, length, into) => {
      if (!parts || offset === 0) {
        let at = 0;
        parts = (await this.#gather(key)).map((bytes) => ({ bytes, at: (at += bytes.byteLength) - bytes.byteLength }));
        if (at !== byteLength) throw new InvalidArgumentError(`gathering ${key}: the ranks' rows hold ${at} bytes, the tensor ${byteLength}.`, { subject: key });
      }
      const out = into ?? new Uint8Array(length);
      for (const p of parts) {
        const a = Math.max(offset, p.at);
        const b = Math.min(offset + length, p.at + p.bytes.byteLength);
        if (a < b) out.set(p.bytes.subarray(a - p.at, b - p.at), a - offset);
      }
      if (offset + length === byteLength) parts = undefined;
      return out;
    }, `${key} (gathered from ${this.#collective.worldSize} ranks)`);
  }

  /** Rank 0: asks for `key` and receives every rank's rows of it, in rank order. */
  async #gather(key: string): Promise<Uint8Array[]> {
    const options = { timeoutMs: this.#timeoutMs };
    await this.#collective.broadcast<Request>(REQUEST, { key }, 0, options);
    const parts = await this.#collective.allGather<Part>(`fsdp full save: gather ${key}`, await this.#part(key), options);
    return parts.map((p, r) => {
      if (!p?.bytes) throw new InvalidArgumentError(`gathering ${key}: rank ${r} ${p?.error ?? "sent nothing"}.`, { subject: key });
      return p.bytes;
    });
  }

  async #part(key: string): Promise<Part> {
    const rows = this.#mine.get(key);
    if (!rows) return { error: `holds no rows of ${key}; every rank must save the same state` };
    return { bytes: await bytesOf(this.#local(rows)) };
  }

  /** Rank 0, once its write is over (finished or failed): releases the ranks in {@link serveGathers}. */
  async finish(): Promise<void> {
    await this.#collective.broadcast<Request>(REQUEST, { done: true }, 0, { timeoutMs: this.#timeoutMs });
  }

  /** Every rank but 0: answers rank 0's requests until it says the write is over. */
  async serveGathers(): Promise<void> {
    const options = { timeoutMs: this.#timeoutMs };
    for (;;) {
      const request = await this.#collective.broadcast<Request | undefined>(REQUEST, undefined, 0, options);
      if (!request || "done" in request) return;
      await this.#collective.allGather<Part>(`fsdp full save: gather ${request.key}`, await this.#part(request.key), options);
    }
  }
}
