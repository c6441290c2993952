/**
 * Writes a stored zip the way torch 2.x's `torch.save` does: streamed entries with data
 * descriptors, each entry's data aligned by an `FB` padding extra field, zip64 only where needed.
 * Nothing is ever seeked back, so any sequential `ByteSink` works.
 */
import { InvalidArgumentError } from "../../errors.js";
import type { ByteSink } from "../../io/byte-source.js";
import {
  CENTRAL_HEADER_SIZE,
  DOS_DATE_EPOCH,
  DOS_TIME_MIDNIGHT,
  EOCD_SIZE,
  EXTRA_TORCH_PADDING,
  EXTRA_ZIP64,
  FLAG_DATA_DESCRIPTOR,
  FLAG_UTF8,
  LOCAL_HEADER_SIZE,
  MAX_U16,
  MAX_U32,
  METHOD_STORED,
  SIG_CENTRAL,
  SIG_DESCRIPTOR,
  SIG_EOCD,
  SIG_LOCAL,
  SIG_ZIP64_EOCD,
  SIG_ZIP64_LOCATOR,
  VERSION_DEFAULT,
  VERSION_ZIP64,
  ZIP64_EOCD_SIZE,
  ZIP64_LOCATOR_SIZE,
} from "./constants.js";
import { crc32 } from "./crc32.js";

export interface ZipWriterOptions {
  /** data of every entry starts at a multiple of this @default 64 */
  align?: number;
}

/** Small writes are gathered up to this size so headers and tiny entries reach the sink together. */
const BUFFER_SIZE = 256 << 10;
/** Chunks at least this big bypass the buffer and go to the sink as they are, uncopied. */
const DIRECT_WRITE = 64 << 10;
/** The padding extra field's length is 16-bit, and it also holds a 4-byte header and maybe zip64. */
const MAX_ALIGN = 0x8000;
/**
 * Big chunks are written and checksummed in pieces of this size: each piece's CRC runs while its
 * write is in flight, on bytes the copy into the page cache has just brought into the CPU cache.
 */
const CRC_PIECE = 1 << 20;
/** Pieces in flight at once for a sink that declares `concurrentWriteBytes` (up to CRC_PIECE). */
const WRITE_WINDOW = 4;
const PAD_BYTE = 0x5a; // 'Z', as torch pads
const FLAGS = FLAG_DATA_DESCRIPTOR | FLAG_UTF8;

interface WrittenEntry {
  readonly nameBytes: Uint8Array;
  readonly offset: number;
  readonly size: number;
  readonly crc: number;
}

const utf8 = new TextEncoder();

function isBytes(x: unknown): x is Uint8Array {
  // The tag check accepts Uint8Arrays from another realm (worker, vm context) too.
  return x instanceof Uint8Array || (ArrayBuffer.isView(x) && (x as { [Symbol.toStringTag]?: string })[Symbol.toStringTag] === "Uint8Array");
}

function setU64(v: DataView, at: number, value: number): void {
  v.setUint32(at, value % 2 ** 32, true);
  v.setUint32(at + 4, Math.floor(value / 2 ** 32), true);
}

function u32OrMarker(value: number): number {
  return value >= MAX_U32 ? MAX_U32 : value;
}

export class ZipWriter {
  readonly #sink: ByteSink;
  readonly #align: number;
  /** Big-chunk writes allowed in flight at once: several for sinks that write positionally. */
  readonly #window: number;
  /** Pieces at least this big may overlap earlier writes (Infinity: none may). */
  readonly #overlapBytes: number;
  // Starts small and grows to BUFFER_SIZE: a DCP shard writes every item (thousands of small
  // tensors) as its own archive, and a full-size buffer each would be mostly garbage to collect.
  #buffer = new Uint8Array(4096);
  #buffered = 0;
  /** Archive bytes produced so far (flushed or buffered); zip offsets are relative to the archive start. */
  #offset = 0;
  readonly #entries: WrittenEntry[] = [];
  readonly #names = new Set<string>();
  #state: "ready" | "busy" | "failed" | "finished" = "ready";
  #failure: unknown;

  constructor(sink: ByteSink, options?: ZipWriterOptions) {
    const align = options?.align ?? 64;
    if (!Number.isInteger(align) || align < 1 || align > MAX_ALIGN) {
      throw new InvalidArgumentError(`ZipWriter: align must be an integer from 1 to ${MAX_ALIGN}, got ${String(align)}.`);
    }
    this.#sink = sink;
    this.#align = align;
    const overlap = (sink as { concurrentWriteBytes?: unknown }).concurrentWriteBytes;
    this.#overlapBytes = typeof overlap === "number" && overlap > 0 ? overlap : Number.POSITIVE_INFINITY;
    this.#window = this.#overlapBytes <= CRC_PIECE ? WRITE_WINDOW : 1;
  }

  /** Streams one stored entry. `size` is declared up front; a stream that yields a different total is an InvalidArgumentError and the writer is unusable afterwards. CRC computed on the fly. */
  async addEntry(
    name: string,
    data: Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    size: number,
  ): Promise<void> {
    this.#checkUsable(`add entry "${String(name)}"`);
    if (typeof name !== "string" || name.length === 0) {
      throw new InvalidArgumentError(`ZipWriter.addEntry: the entry name must be a non-empty string, got ${JSON.stringify(name)}.`);
    }
    const nameBytes = utf8.encode(name);
    if (nameBytes.length > MAX_U16) {
      throw new InvalidArgumentError(`ZipWriter.addEntry: entry name "${name.slice(0, 80)}…" is ${nameBytes.length} UTF-8 bytes; zip allows at most ${MAX_U16}.`);
    }
    if (this.#names.has(name)) {
      throw new InvalidArgumentError(`ZipWriter.addEntry: entry "${name}" was already written; every name in an archive must be unique.`);
    }
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new InvalidArgumentError(`ZipWriter.addEntry: size of entry "${name}" must be a non-negative integer, got ${String(size)}.`);
    }
    const isStream =
      !isBytes(data) && typeof data === "object" && data !== null && (Symbol.asyncIterator in data || Symbol.iterator in data);
    if (!isBytes(data) && !isStream) {
      throw new InvalidArgumentError(`ZipWriter.addEntry: data of entry "${name}" must be a Uint8Array or an (async) iterable of Uint8Array.`);
    }
    if (isBytes(data) && data.length !== size) {
      throw new InvalidArgumentError(`ZipWriter.addEntry: entry "${name}" was declared as ${size} bytes but the Uint8Array holds ${data.length}.`);
    }

    // From here on bytes reach the sink, so a failure leaves a partial archive: poison the writer.
    this.#state = "busy";
    try {
      const offset = this.#offset;
      const zip64 = size >= MAX_U32;
      await this.#emit(this.#localHeader(nameBytes, offset, zip64));

      let crc = 0;
      let written = 0;
      const take = async (chunk: unknown): Promise<void> => {
        if (!isBytes(chunk)) {
          throw new InvalidArgumentError(`ZipWriter.addEntry: the data stream of entry "${name}" yielded a ${typeof chunk}, not a Uint8Array.`);
        }
        if (written + chunk.length > size) {
          throw new InvalidArgumentError(
            `ZipWriter.addEntry: the data stream of entry "${name}" yielded more than the declared ${size} bytes; pass the exact size.`,
          );
        }
        written += chunk.length;
        if (chunk.length < DIRECT_WRITE) {
          crc = crc32(chunk, crc);
          await this.#emit(chunk);
          return;
        }
        // A big chunk goes to the sink as it is, in pieces. Hand the buffered header over first,
        // then start each piece's write and checksum it while the write is under way (both only
        // read it), so the CRC hides behind the I/O instead of adding to it. A sink that allows it
        // (`concurrentWriteBytes`) takes the next full piece before the last one is done; a smaller
        // piece is written alone, with nothing else in flight.
        if (this.#buffered > 0) await this.#flush();
        const inFlight: Promise<void>[] = [];
        try {
          for (let at = 0; at < chunk.length; at += CRC_PIECE) {
            const piece = at === 0 && chunk.length <= CRC_PIECE ? chunk : chunk.subarray(at, Math.min(chunk.length, at + CRC_PIECE));
            if (piece.length < this.#overlapBytes) while (inFlight.length > 0) await inFlight.shift();
            const writing = this.#direct(piece);
            writing.catch(() => {}); // awaited below; this only keeps a failure from going unhandled meanwhile
            inFlight.push(writing);
            crc = crc32(piece, crc);
            if (inFlight.length >= this.#window || piece.length < this.#overlapBytes) await inFlight.shift();
          }
        } finally {
          // Nothing of this chunk may still be in flight once take() returns (or throws).
          await Promise.allSettled(inFlight);
        }
        for (const w of inFlight) await w;
      };
      if (isBytes(data)) {
        await take(data);
      } else {
        for await (const chunk of data) await take(chunk);
      }
      if (written !== size) {
        throw new InvalidArgumentError(
          `ZipWriter.addEntry: the data stream of entry "${name}" yielded ${written} bytes but ${size} were declared; pass the exact size.`,
        );
      }

      await this.#emit(this.#dataDescriptor(crc, size, zip64));
      this.#entries.push({ nameBytes, offset, size, crc });
      this.#names.add(name);
      this.#state = "ready";
    } catch (err) {
      this.#fail(err);
      throw err;
    }
  }

  /** Writes the central directory (+ zip64 EOCD record and locator when any size/offset/count needs it) and EOCD. */
  async finish(): Promise<void> {
    this.#checkUsable("finish");
    this.#state = "busy";
    try {
      const cdOffset = this.#offset;
      for (const entry of this.#entries) await this.#emit(this.#centralHeader(entry));
      const cdSize = this.#offset - cdOffset;
      const count = this.#entries.length;
      if (count >= MAX_U16 || cdSize >= MAX_U32 || cdOffset >= MAX_U32) {
        const recordOffset = this.#offset;
        await this.#emit(this.#zip64End(count, cdSize, cdOffset));
        await this.#emit(this.#zip64Locator(recordOffset));
      }
      await this.#emit(this.#end(count, cdSize, cdOffset));
      await this.#flush();
      this.#state = "finished";
    } catch (err) {
      this.#fail(err);
      throw err;
    }
  }

  #checkUsable(action: string): void {
    switch (this.#state) {
      case "ready":
        return;
      case "busy":
        throw new InvalidArgumentError(`ZipWriter: cannot ${action} while another addEntry/finish is running; await each call before the next.`);
      case "finished":
        throw new InvalidArgumentError(`ZipWriter: cannot ${action} after finish(); the archive is complete.`);
      case "failed": {
        const why = this.#failure instanceof Error ? this.#failure.message : String(this.#failure);
        throw new InvalidArgumentError(
          `ZipWriter: cannot ${action}: an earlier write failed (${why}). The archive is incomplete; discard it and write a new one.`,
          { cause: this.#failure },
        );
      }
    }
  }

  #fail(err: unknown): void {
    this.#state = "failed";
    this.#failure = err;
  }

  /** Local header with flags 0x0808, zeroed CRC/sizes, an optional zip64 extra, and `FB` padding. */
  #localHeader(nameBytes: Uint8Array, offset: number, zip64: boolean): Uint8Array {
    const zip64Length = zip64 ? 4 + 16 : 0;
    const unpadded = offset + LOCAL_HEADER_SIZE + nameBytes.length + zip64Length + 4;
    const padding = (this.#align - (unpadded % this.#align)) % this.#align;
    const extraLength = zip64Length + 4 + padding;
    const bytes = new Uint8Array(LOCAL_HEADER_SIZE + nameBytes.length + extraLength);
    const v = new DataView(bytes.buffer);
    v.setUint32(0, SIG_LOCAL, true);
    v.setUint16(4, zip64 || offset >= MAX_U32 ? VERSION_ZIP64 : VERSION_DEFAULT, true);
    v.setUint16(6, FLAGS, true);
    v.setUint16(8, METHOD_STORED, true);
    v.setUint16(10, DOS_TIME_MIDNIGHT, true);
    v.setUint16(12, DOS_DATE_EPOCH, true);
    // CRC (14) stays 0: it follows in the data descriptor.
    if (zip64) {
      // The spec wants 0xFFFFFFFF here and both sizes in the zip64 field (zero: they are unknown yet).
      v.setUint32(18, MAX_U32, true);
      v.setUint32(22, MAX_U32, true);
    }
    v.setUint16(26, nameBytes.length, true);
    v.setUint16(28, extraLength, true);
    bytes.set(nameBytes, LOCAL_HEADER_SIZE);
    let p = LOCAL_HEADER_SIZE + nameBytes.length;
    if (zip64) {
      v.setUint16(p, EXTRA_ZIP64, true);
      v.setUint16(p + 2, 16, true);
      p += zip64Length;
    }
    v.setUint16(p, EXTRA_TORCH_PADDING, true);
    v.setUint16(p + 2, padding, true);
    bytes.fill(PAD_BYTE, p + 4);
    return bytes;
  }

  #dataDescriptor(crc: number, size: number, zip64: boolean): Uint8Array {
    const bytes = new Uint8Array(zip64 ? 24 : 16);
    const v = new DataView(bytes.buffer);
    v.setUint32(0, SIG_DESCRIPTOR, true);
    v.setUint32(4, crc, true);
    if (zip64) {
      setU64(v, 8, size);
      setU64(v, 16, size);
    } else {
      v.setUint32(8, size, true);
      v.setUint32(12, size, true);
    }
    return bytes;
  }

  #centralHeader(entry: WrittenEntry): Uint8Array {
    const { nameBytes, offset, size, crc } = entry;
    const sizeOverflow = size >= MAX_U32;
    const offsetOverflow = offset >= MAX_U32;
    // The zip64 field carries only the overflowing values, sizes before the offset.
    const zip64Values = (sizeOverflow ? 2 : 0) + (offsetOverflow ? 1 : 0);
    const extraLength = zip64Values > 0 ? 4 + 8 * zip64Values : 0;
    const version = zip64Values > 0 ? VERSION_ZIP64 : VERSION_DEFAULT;
    const bytes = new Uint8Array(CENTRAL_HEADER_SIZE + nameBytes.length + extraLength);
    const v = new DataView(bytes.buffer);
    v.setUint32(0, SIG_CENTRAL, true);
    v.setUint16(4, version, true);
    v.setUint16(6, version, true);
    v.setUint16(8, FLAGS, true);
    v.setUint16(10, METHOD_STORED, true);
    v.setUint16(12, DOS_TIME_MIDNIGHT, true);
    v.setUint16(14, DOS_DATE_EPOCH, true);
    v.setUint32(16, crc, true);
    v.setUint32(20, u32OrMarker(size), true);
    v.setUint32(24, u32OrMarker(size), true);
    v.setUint16(28, nameBytes.length, true);
    v.setUint16(30, extraLength, true);
    // Comment length, disk start, attributes (32..41) stay 0.
    v.setUint32(42, u32OrMarker(offset), true);
    bytes.set(nameBytes, CENTRAL_HEADER_SIZE);
    if (extraLength > 0) {
      let p = CENTRAL_HEADER_SIZE + nameBytes.length;
      v.setUint16(p, EXTRA_ZIP64, true);
      v.setUint16(p + 2, 8 * zip64Values, true);
      p += 4;
      if (sizeOverflow) {
        setU64(v, p, size);
        setU64(v, p + 8, size);
        p += 16;
      }
      if (offsetOverflow) setU64(v, p, offset);
    }
    return bytes;
  }

  #zip64End(count: number, cdSize: number, cdOffset: number): Uint8Array {
    const bytes = new Uint8Array(ZIP64_EOCD_SIZE);
    const v = new DataView(bytes.buffer);
    v.setUint32(0, SIG_ZIP64_EOCD, true);
    setU64(v, 4, ZIP64_EOCD_SIZE - 12); // size of the rest of the record
    v.setUint16(12, VERSION_ZIP64, true);
    v.setUint16(14, VERSION_ZIP64, true);
    // This disk and the central directory's disk (16..23) are 0.
    setU64(v, 24, count);
    setU64(v, 32, count);
    setU64(v, 40, cdSize);
    setU64(v, 48, cdOffset);
    return bytes;
  }

  #zip64Locator(recordOffset: number): Uint8Array {
    const bytes = new Uint8Array(ZIP64_LOCATOR_SIZE);
    const v = new DataView(bytes.buffer);
    v.setUint32(0, SIG_ZIP64_LOCATOR, true);
    setU64(v, 8, recordOffset);
    v.setUint32(16, 1, true); // total number of disks
    return bytes;
  }

  #end(count: number, cdSize: number, cdOffset: number): Uint8Array {
    const bytes = new Uint8Array(EOCD_SIZE);
    const v = new DataView(bytes.buffer);
    v.setUint32(0, SIG_EOCD, true);
    const shortCount = count >= MAX_U16 ? MAX_U16 : count;
    v.setUint16(8, shortCount, true);
    v.setUint16(10, shortCount, true);
    v.setUint32(12, u32OrMarker(cdSize), true);
    v.setUint32(16, u32OrMarker(cdOffset), true);
    return bytes;
  }

  /**
   * Passes a big chunk to the sink uncopied. With nothing buffered the sink's write starts before
   * this returns (no await in between), which lets the caller checksum the chunk meanwhile.
   */
  #direct(chunk: Uint8Array): Promise<void> {
    this.#offset += chunk.length;
    if (this.#buffered === 0) return this.#sink.write(chunk);
    return this.#flush().then(() => this.#sink.write(chunk));
  }

  /** Buffers small chunks; passes big ones straight to the sink so tensor data is never copied. */
  async #emit(chunk: Uint8Array): Promise<void> {
    this.#offset += chunk.length;
    if (chunk.length >= DIRECT_WRITE) {
      await this.#flush();
      await this.#sink.write(chunk);
      return;
    }
    const need = this.#buffered + chunk.length;
    if (need > this.#buffer.length && this.#buffer.length < BUFFER_SIZE) {
      const grown = new Uint8Array(Math.min(BUFFER_SIZE, Math.max(need, 2 * this.#buffer.length)));
      grown.set(this.#buffer.subarray(0, this.#buffered));
      this.#buffer = grown;
    }
    if (need > this.#buffer.length) await this.#flush();
    this.#buffer.set(chunk, this.#buffered);
    this.#buffered += chunk.length;
  }

  async #flush(): Promise<void> {
    if (this.#buffered === 0) return;
    const length = this.#buffered;
    this.#buffered = 0;
    await this.#sink.write(this.#buffer.subarray(0, length));
  }
}
