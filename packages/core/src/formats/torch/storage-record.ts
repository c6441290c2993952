import { CorruptCheckpointError } from "../../errors.js";
import type { ByteSource } from "../../io/byte-source.js";
import { crc32 } from "../zip/crc32.js";

/** Unread record tails up to this size are checked at once (see `#checkShortTail`). */
const SHORT_TAIL = 4 << 20;

/** Verified reads go in pieces of this size, the next read under way while a piece is checksummed. */
const PIECE = 1 << 20;

/**
 * Reads `length` bytes in pieces with one read ahead, handing each piece to `take` as it arrives
 * (while the next is being read, and while it is still in the CPU cache). At most one read is in
 * flight, and it is always awaited.
 */
async function pipelined(length: number, readPiece: (at: number, n: number) => Promise<Uint8Array>, take: (bytes: Uint8Array, at: number) => void): Promise<void> {
  if (length === 0) return;
  let pending: Promise<Uint8Array> | undefined = readPiece(0, Math.min(PIECE, length));
  try {
    for (let at = 0; at < length; ) {
      const n = Math.min(PIECE, length - at);
      const bytes: Uint8Array = await pending!;
      pending = undefined;
      const next = at + n;
      if (next < length) pending = readPiece(next, Math.min(PIECE, length - next));
      take(bytes.subarray(0, n), at);
      at = next;
    }
  } catch (err) {
    // `take` threw (a CRC mismatch) with a read still under way: let it finish unobserved.
    pending?.catch(() => {});
    throw err;
  }
}

/**
 * One `data/<key>` record of a torch file: reads byte ranges of the storage and checks the record's
 * CRC32 without a second pass where it can. Reads that walk the record from its start (a whole
 * tensor, or its chunks in order) update a running CRC checked when the end is reached; a read that
 * jumps verifies the whole record first, once.
 */
export class StorageRecord {
  #verified: boolean;
  #crc = 0;
  #next = 0;

  constructor(
    readonly source: ByteSource,
    readonly name: string,
    /** Absolute offset of the record's first byte. */
    readonly offset: number,
    readonly size: number,
    readonly expectedCrc: number | undefined,
    verify: boolean,
  ) {
    this.#verified = !verify || expectedCrc === undefined;
  }

  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    if (offset < 0 || offset + length > this.size) {
      throw new CorruptCheckpointError(`${this.name}: a tensor reads bytes [${offset}, ${offset + length}) of a record of ${this.size} bytes. The file is damaged.`, { subject: this.name });
    }
    if (!this.#verified && offset !== this.#next) await this.#verifyAll();
    if (this.#verified) return this.source.read(this.offset + offset, length, into);
    if (length <= PIECE) {
      const out = await this.source.read(this.offset + offset, length, into);
      this.#fold(out.subarray(0, length), offset);
      await this.#checkShortTail();
      return out;
    }
    // A long read goes piece by piece, reading the next piece while this one is checksummed.
    const out = into ?? new Uint8Array(length);
    await pipelined(length, (at, n) => this.source.read(this.offset + offset + at, n, out.subarray(at, at + n)), (bytes, at) => {
      if (bytes.buffer !== out.buffer || bytes.byteOffset !== out.byteOffset + at) out.set(bytes, at);
      this.#fold(bytes, offset + at);
    });
    await this.#checkShortTail();
    return out;
  }

  /**
   * A tensor that views the start of a larger storage (FSDP's padded flat parameters) stops its
   * reads before the record's end, which would leave the CRC unchecked for good: a tail of up to
   * SHORT_TAIL bytes is read and checked before the data is handed out. Longer tails wait for a
   * later read (so a partial load does not read unrequested megabytes).
   */
  async #checkShortTail(): Promise<void> {
    const at = this.#next;
    const rest = this.size - at;
    if (this.#verified || rest <= 0 || rest > SHORT_TAIL) return;
    this.#fold(await this.source.read(this.offset + at, rest), at);
  }

  /**
   * Adds the bytes at `at` to the running CRC when they are the next ones; bytes another reader
   * of the same record already covered (or a record verified meanwhile) are skipped.
   */
  #fold(bytes: Uint8Array, at: number): void {
    if (this.#verified || at !== this.#next) return;
    this.#crc = crc32(bytes, this.#crc);
    this.#next = at + bytes.byteLength;
    if (this.#next === this.size) this.#finish(this.#crc);
  }

  async #verifyAll(): Promise<void> {
    const scratch = [new Uint8Array(Math.min(PIECE, this.size)), new Uint8Array(Math.min(PIECE, Math.max(0, this.size - PIECE)))];
    let turn = 0;
    let crc = 0;
    await pipelined(this.size, (at, n) => this.source.read(this.offset + at, n, scratch[turn++ & 1]!.subarray(0, n)), (bytes) => {
      crc = crc32(bytes, crc);
    });
    if (!this.#verified) this.#finish(crc);
  }

  #finish(crc: number): void {
    if (crc >>> 0 !== (this.expectedCrc! >>> 0)) {
      throw new CorruptCheckpointError(`${this.name} is damaged: its CRC32 is ${hex(crc)} but the archive records ${hex(this.expectedCrc!)}. Restore the checkpoint from another copy (or pass \`verify: false\` to read it anyway).`, { subject: this.name });
    }
    this.#verified = true;
  }
}

function hex(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, "0")}`;
}
