import { CorruptCheckpointError } from "../../errors.js";
import type { ByteSource } from "../../io/byte-source.js";
import { crc32 } from "../zip/crc32.js";

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
    const out = await this.source.read(this.offset + offset, length, into);
    if (!this.#verified) {
      this.#crc = crc32(out.subarray(0, length), this.#crc);
      this.#next = offset + length;
      if (this.#next === this.size) this.#finish(this.#crc);
    }
    return out;
  }

  async #verifyAll(): Promise<void> {
    let crc = 0;
    const step = 8 << 20;
    const buf = new Uint8Array(Math.min(step, this.size));
    for (let off = 0; off < this.size; off += step) {
      const n = Math.min(step, this.size - off);
      crc = crc32(await this.source.read(this.offset + off, n, buf.subarray(0, n)), crc);
    }
    this.#finish(crc);
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
