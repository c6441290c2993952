import { CorruptCheckpointError } from "../../errors.js";
import type { ByteSource } from "../../io/byte-source.js";
import { crc32, crcHex } from "../zip/crc32.js";

/** Unread record tails up to this size are checked at once (see `#checkShortTail`). */
const SHORT_TAIL = 4 << 20;

/** Long reads go in pieces of this size, checksummed as they arrive while later ones are read. */
const PIECE = 4 << 20;
/**
 * Pieces in flight at once: the thread pool (warm cache) or the disk queue (cold) stays busy while
 * the main thread checksums. More gains nothing on a 4-thread pool and only holds buffers longer.
 */
const AHEAD = 4;

/**
 * Reads `length` bytes in pieces with up to {@link AHEAD} reads in flight, handing each piece to
 * `take` in order as it arrives (while later ones are read, and while it is still in the CPU
 * cache). Every read started is awaited before this returns or throws, so no read lands in a
 * buffer its caller has already given back.
 */
async function pipelined(length: number, readPiece: (at: number, n: number) => Promise<Uint8Array>, take: (bytes: Uint8Array, at: number) => void): Promise<void> {
  const inFlight: { at: number; n: number; bytes: Promise<Uint8Array> }[] = [];
  let issued = 0;
  const refill = (): void => {
    while (inFlight.length < AHEAD && issued < length) {
      const n = Math.min(PIECE, length - issued);
      const bytes = readPiece(issued, n);
      // Observed in turn below; this only keeps an early failure from being reported as unhandled.
      bytes.catch(() => {});
      inFlight.push({ at: issued, n, bytes });
      issued += n;
    }
  };
  try {
    refill();
    while (inFlight.length > 0) {
      const { at, n, bytes } = inFlight.shift()!;
      const got = await bytes;
      refill();
      take(got.subarray(0, n), at);
    }
  } finally {
    if (inFlight.length > 0) await Promise.allSettled(inFlight.map((p) => p.bytes));
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
    if (this.#verified) {
      if (length <= PIECE * AHEAD) return this.source.read(this.offset + offset, length, into);
      // Long unchecked reads go in pieces too: a cold disk sees a queue of requests, not one at a time.
      return this.#readPieces(offset, length, into);
    }
    let out: Uint8Array;
    if (length <= PIECE) {
      out = await this.source.read(this.offset + offset, length, into);
      this.#fold(out.subarray(0, length), offset);
    } else {
      // A long read goes piece by piece, reading the next pieces while this one is checksummed.
      out = await this.#readPieces(offset, length, into, (bytes, at) => this.#fold(bytes, offset + at));
    }
    if (this.#shortTail()) await this.#checkShortTail();
    return out;
  }

  /** Bytes `[offset, offset + length)` read in pieces with several in flight, each handed to `each` as it arrives. */
  async #readPieces(offset: number, length: number, into: Uint8Array | undefined, each?: (bytes: Uint8Array, at: number) => void): Promise<Uint8Array> {
    const out = into ?? new Uint8Array(length);
    await pipelined(length, (at, n) => this.source.read(this.offset + offset + at, n, out.subarray(at, at + n)), (bytes, at) => {
      // A source may hand back its own buffer instead of filling the one it was given.
      if (bytes.buffer !== out.buffer || bytes.byteOffset !== out.byteOffset + at) out.set(bytes, at);
      each?.(bytes, at);
    });
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
    this.#fold(await this.source.read(this.offset + at, this.size - at), at);
  }

  /** Whether an unverified tail of at most SHORT_TAIL bytes is left (checked without an await: most reads end at the record's end). */
  #shortTail(): boolean {
    const rest = this.size - this.#next;
    return !this.#verified && rest > 0 && rest <= SHORT_TAIL;
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
    // One scratch piece per read in flight, used in turn: a piece is checksummed before the read
    // that reuses its buffer is started.
    const scratch = Array.from({ length: Math.min(AHEAD + 1, Math.ceil(this.size / PIECE)) }, () => new Uint8Array(Math.min(PIECE, this.size)));
    let turn = 0;
    let crc = 0;
    await pipelined(this.size, (at, n) => this.source.read(this.offset + at, n, scratch[turn++ % scratch.length]!.subarray(0, n)), (bytes) => {
      crc = crc32(bytes, crc);
    });
    if (!this.#verified) this.#finish(crc);
  }

  #finish(crc: number): void {
    if (crc >>> 0 !== (this.expectedCrc! >>> 0)) {
      throw new CorruptCheckpointError(`${this.name} is damaged: its CRC32 is 0x${crcHex(crc)} but the archive records 0x${crcHex(this.expectedCrc!)}. Restore the checkpoint from another copy (or pass \`verify: false\` to read it anyway).`, { subject: this.name });
    }
    this.#verified = true;
  }
}

