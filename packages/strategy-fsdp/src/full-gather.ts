import { copyMarks, InvalidArgumentError, isPlainObject, isTensorSource, itemSize, LazyTensor, numel, readTensorBytes, type Backend, type Collective, type DType, type TensorSource } from "@savepoint/core";
import { LocalRows } from "./placed-state.js";

/** Tag of the requests rank 0 sends while writing a full checkpoint. */
const REQUEST = "fsdp full save: next tensor";

/** What rank 0 broadcasts: the bytes `[offset, offset + length)` of a tensor to gather next, or the end of the write. */
type Request = { key: string; offset: number; length: number } | { done: true };

/** A rank's contribution to one gather: the requested bytes its rows hold, or why it has none. */
interface Part {
  bytes?: Uint8Array;
  error?: string;
}

/**
 * The full checkpoint of a sharded state, assembled on rank 0 piece by piece while it is being
 * written: each sharded tensor in the tree becomes a source whose every read (the writer reads in
 * pieces of its chunk size) asks the ranks for those bytes (a broadcast of the tensor's name and
 * range, then an all-gather of each rank's overlap with it). So rank 0 holds one piece at a time,
 * never a whole tensor, collective messages stay small however large a weight is, and the write's
 * order (whatever the format) decides the order of the gathers. The other ranks answer in
 * {@link serveGathers} until rank 0 says the write is over.
 */
export class FullGather {
  readonly #collective: Collective;
  readonly #backend: Backend;
  readonly #timeoutMs: number;
  /** This rank's rows of every sharded tensor, by its path in the tree. */
  readonly #mine = new Map<string, LocalRows>();
  /** The bytes of the tensor being gathered (this rank's rows), read once for all its pieces. */
  #current: { key: string; bytes: Uint8Array } | undefined;

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

  /** The whole tensor: each read gathers the range it asks for from the ranks that hold it. */
  #wholeSource(key: string, rows: LocalRows): TensorSource {
    const dtype: DType = this.#local(rows).dtype;
    const byteLength = numel(rows.shape) * itemSize(dtype);
    return new LazyTensor(dtype, rows.shape, async (offset, length, into) => {
      const out = into ?? new Uint8Array(length);
      const parts = await this.#gather(key, offset, length);
      let at = 0;
      for (const p of parts) {
        out.set(p, at);
        at += p.byteLength;
      }
      if (at !== length) throw new InvalidArgumentError(`gathering ${key}: the ranks' rows hold ${at} of the bytes [${offset}, ${offset + length}) of the tensor (${byteLength} bytes).`, { subject: key });
      return out;
    }, `${key} (gathered from ${this.#collective.worldSize} ranks)`);
  }

  /** Rank 0: asks for bytes `[offset, offset + length)` of `key` and receives every rank's share of them, in rank order. */
  async #gather(key: string, offset: number, length: number): Promise<Uint8Array[]> {
    const options = { timeoutMs: this.#timeoutMs };
    const request = { key, offset, length };
    await this.#collective.broadcast<Request>(REQUEST, request, 0, options);
    const parts = await this.#collective.allGather<Part>(`fsdp full save: gather ${key}`, await this.#part(request), options);
    return parts.map((p, r) => {
      if (!p?.bytes) throw new InvalidArgumentError(`gathering ${key}: rank ${r} ${p?.error ?? "sent nothing"}.`, { subject: key });
      return p.bytes;
    });
  }

  /** The bytes of the requested range that this rank's rows hold (rows are contiguous in the tensor). */
  async #part({ key, offset, length }: { key: string; offset: number; length: number }): Promise<Part> {
    const rows = this.#mine.get(key);
    if (!rows) return { error: `holds no rows of ${key}; every rank must save the same state` };
    if (this.#current?.key !== key) {
      this.#current = undefined; // the previous tensor's rows are done with
      this.#current = { key, bytes: await readTensorBytes(this.#local(rows)) };
    }
    const mine = this.#current.bytes;
    const rowBytes = rows.range.rows === 0 ? 0 : mine.byteLength / rows.range.rows;
    const start = rows.range.start * rowBytes;
    const a = Math.max(offset, start);
    const b = Math.min(offset + length, start + mine.byteLength);
    // A copy: a view would carry this rank's whole rows through the collective.
    return { bytes: a < b ? mine.slice(a - start, b - start) : new Uint8Array(0) };
  }

  /** Rank 0, once its write is over (finished or failed): releases the ranks in {@link serveGathers}. */
  async finish(): Promise<void> {
    this.#current = undefined;
    await this.#collective.broadcast<Request>(REQUEST, { done: true }, 0, { timeoutMs: this.#timeoutMs });
  }

  /** Every rank but 0: answers rank 0's requests until it says the write is over. */
  async serveGathers(): Promise<void> {
    const options = { timeoutMs: this.#timeoutMs };
    for (;;) {
      const request = await this.#collective.broadcast<Request | undefined>(REQUEST, undefined, 0, options);
      if (!request || "done" in request) {
        this.#current = undefined;
        return;
      }
      await this.#collective.allGather<Part>(`fsdp full save: gather ${request.key}`, await this.#part(request), options);
    }
  }
}
