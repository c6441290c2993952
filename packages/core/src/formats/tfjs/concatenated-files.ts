import { CorruptCheckpointError } from "../../errors.js";
import type { ByteSource } from "../../io/byte-source.js";

/**
 * Several files read as one byte sequence, the way tfjs lays a weight group across its shard
 * files: a range may start in one file and end in the next.
 */
export class ConcatenatedFiles {
  readonly size: number;
  readonly #files: readonly ByteSource[];
  /** `#starts[i]` is where file i begins in the sequence. */
  readonly #starts: readonly number[];

  constructor(files: readonly ByteSource[]) {
    this.#files = files;
    const starts: number[] = [];
    let total = 0;
    for (const f of files) {
      starts.push(total);
      total += f.size;
    }
    this.#starts = starts;
    this.size = total;
  }

  /** Reads `[offset, offset + length)` of the sequence, into `into` when given. */
  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      const names = this.#files.map((f) => f.name).join(", ");
      throw new CorruptCheckpointError(`bytes [${offset}, ${offset + length}) pass the end of the ${this.size} bytes of ${names}; the shard files are truncated.`, { subject: names });
    }
    if (length === 0) return into ? into.subarray(0, 0) : new Uint8Array(0);

    const pieces: { file: ByteSource; local: number; at: number; n: number }[] = [];
    let i = this.#fileAt(offset);
    for (let at = 0; at < length; i++) {
      const file = this.#files[i]!;
      const local = offset + at - this.#starts[i]!;
      const n = Math.min(file.size - local, length - at);
      if (n > 0) pieces.push({ file, local, at, n });
      at += Math.max(n, 0);
    }
    if (pieces.length === 1 && !into) return pieces[0]!.file.read(pieces[0]!.local, length);
    const out = into ?? new Uint8Array(length);
    await Promise.all(pieces.map((p) => p.file.read(p.local, p.n, out.subarray(p.at, p.at + p.n))));
    return out;
  }

  /** Index of the last file starting at or before `offset` (binary search; files may be empty). */
  #fileAt(offset: number): number {
    let lo = 0;
    let hi = this.#starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.#starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}
