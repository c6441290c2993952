/**
 * Reads the directory of a stored (uncompressed) zip such as `torch.save` writes, through ranged
 * reads only: entry data is never loaded here, callers read `[dataOffset, dataOffset + size)`.
 * The central directory is authoritative; local headers are read only to find where data starts
 * (torch pads them with an `FB` extra field the central directory does not repeat).
 */
import { CorruptCheckpointError, UnsupportedFormatError } from "../../errors.js";
import type { ByteSource } from "../../io/byte-source.js";
import {
  CENTRAL_HEADER_SIZE,
  EOCD_SIZE,
  EXTRA_ZIP64,
  FLAG_DATA_DESCRIPTOR,
  FLAG_ENCRYPTED,
  FLAG_STRONG_ENCRYPTION,
  LOCAL_HEADER_SIZE,
  MAX_U16,
  MAX_U32,
  METHOD_STORED,
  SIG_CENTRAL,
  SIG_EOCD,
  SIG_LOCAL,
  SIG_ZIP64_EOCD,
  SIG_ZIP64_LOCATOR,
  ZIP64_EOCD_SIZE,
  ZIP64_LOCATOR_SIZE,
} from "./constants.js";
import { crc32, crcHex } from "./crc32.js";

export interface ZipEntry {
  readonly name: string;
  readonly size: number;
  readonly crc32: number;
  readonly localHeaderOffset: number;
  /** absolute offset of the first data byte, from the LOCAL header */
  readonly dataOffset: number;
}

export interface ZipArchive {
  readonly entries: readonly ZipEntry[];
  get(name: string): ZipEntry | undefined;
  readonly source: ByteSource;
}

/** The EOCD is 22 bytes plus a comment of at most 65,535 bytes, so it lies in this tail. */
const EOCD_SEARCH = EOCD_SIZE + 0xffff;
/** torch's FB padding is under 64 + 4 bytes, so this much slack usually gets a local header in one read. */
const LOCAL_READ_SLACK = 128;
/** Local headers are independent small reads; a few in flight hide per-read latency. */
const LOCAL_READ_CONCURRENCY = 64;
const VERIFY_CHUNK = 4 << 20;

const FIX_HINT = "The file is truncated or damaged; re-download it or save the checkpoint again.";

function corrupt(source: ByteSource, what: string, entry?: string): CorruptCheckpointError {
  const where = entry === undefined ? source.name : `${source.name} (entry "${entry}")`;
  return new CorruptCheckpointError(`${where}: ${what}. ${FIX_HINT}`, { subject: source.name });
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Exact up to 2^53; larger values are only ever compared against the file size, where they fail. */
function u64(v: DataView, at: number): number {
  return v.getUint32(at, true) + v.getUint32(at + 4, true) * 2 ** 32;
}

const utf8 = new TextDecoder("utf-8");

interface EndRecord {
  count: number;
  cdSize: number;
  cdOffset: number;
  /** Where the central directory must end by: the zip64 end record, or the EOCD. */
  cdLimit: number;
}

/** Position in `tail` of the EOCD: the last signature whose comment ends the file, else the last that fits. */
function findEocd(tail: Uint8Array, exactOnly = false): number {
  const v = view(tail);
  let fitting = -1;
  for (let i = tail.length - EOCD_SIZE; i >= 0; i--) {
    if (v.getUint32(i, true) !== SIG_EOCD) continue;
    const end = i + EOCD_SIZE + v.getUint16(i + 20, true);
    if (end === tail.length) return i;
    // Tolerates trailing bytes after the comment, as Python's zipfile does.
    if (end < tail.length && fitting < 0) fitting = i;
  }
  return exactOnly ? -1 : fitting;
}

async function readEndRecord(source: ByteSource): Promise<EndRecord> {
  if (source.size < EOCD_SIZE) {
    throw corrupt(source, `only ${source.size} bytes long, too short for a zip archive (a torch.save checkpoint)`);
  }
  // Almost every archive has no comment: try a small tail first, so opening a checkpoint reads
  // about a kilobyte here instead of 64 KiB.
  let tailLength = Math.min(source.size, 1024);
  let tailStart = source.size - tailLength;
  let tail = await source.read(tailStart, tailLength);
  let at = findEocd(tail, true);
  if (at < 0 && tailLength < Math.min(source.size, EOCD_SEARCH)) {
    tailLength = Math.min(source.size, EOCD_SEARCH);
    tailStart = source.size - tailLength;
    tail = await source.read(tailStart, tailLength);
    at = findEocd(tail);
  } else if (at < 0) at = findEocd(tail);
  if (at < 0) {
    throw corrupt(source, "no zip end-of-central-directory record in the last 64 KiB; this is not a zip archive or its end is missing");
  }
  const eocdOffset = tailStart + at;
  const e = view(tail.subarray(at, at + EOCD_SIZE));
  let disk = e.getUint16(4, true);
  let cdDisk = e.getUint16(6, true);
  let diskCount = e.getUint16(8, true);
  let count = e.getUint16(10, true);
  let cdSize = e.getUint32(12, true);
  let cdOffset = e.getUint32(16, true);
  let cdLimit = eocdOffset;

  const locatorOffset = eocdOffset - ZIP64_LOCATOR_SIZE;
  let locator: DataView | undefined;
  if (locatorOffset >= 0) {
    const bytes =
      locatorOffset >= tailStart
        ? tail.subarray(locatorOffset - tailStart, locatorOffset - tailStart + ZIP64_LOCATOR_SIZE)
        : await source.read(locatorOffset, ZIP64_LOCATOR_SIZE);
    const l = view(bytes);
    if (l.getUint32(0, true) === SIG_ZIP64_LOCATOR) locator = l;
  }
  if (locator) {
    const recordOffset = u64(locator, 8);
    if (locator.getUint32(4, true) !== 0 || locator.getUint32(16, true) > 1) {
      throw new UnsupportedFormatError(
        `${source.name}: the zip archive is split over several disks; join the parts into one file first.`,
        { subject: source.name },
      );
    }
    if (recordOffset + ZIP64_EOCD_SIZE > locatorOffset) {
      throw corrupt(source, `the zip64 end record offset ${recordOffset} lies past the zip64 locator at ${locatorOffset}`);
    }
    const r = view(await source.read(recordOffset, ZIP64_EOCD_SIZE));
    if (r.getUint32(0, true) !== SIG_ZIP64_EOCD) {
      throw corrupt(source, `no zip64 end record at offset ${recordOffset}, where the zip64 locator points`);
    }
    disk = r.getUint32(16, true);
    cdDisk = r.getUint32(20, true);
    diskCount = u64(r, 24);
    count = u64(r, 32);
    cdSize = u64(r, 40);
    cdOffset = u64(r, 48);
    cdLimit = recordOffset;
  }
  // Without a locator, 0xFFFF/0xFFFFFFFF are taken literally: Python's zipfile writes exactly 65,535
  // entries without zip64. If they were meant as zip64 markers, the bounds checks below fail.
  if (disk !== 0 || cdDisk !== 0 || diskCount !== count) {
    throw new UnsupportedFormatError(
      `${source.name}: the zip archive is split over several disks; join the parts into one file first.`,
      { subject: source.name },
    );
  }
  if (cdOffset + cdSize > cdLimit) {
    throw corrupt(
      source,
      `the central directory (${cdSize} bytes at offset ${cdOffset}) runs past its end record at ${cdLimit} (file size ${source.size})`,
    );
  }
  // Each central header takes at least 46 bytes: a larger count is a lie, caught before allocating.
  if (count * CENTRAL_HEADER_SIZE > cdSize) {
    throw corrupt(source, `the end record claims ${count} entries but the central directory holds only ${cdSize} bytes`);
  }
  return { count, cdSize, cdOffset, cdLimit };
}

/** The payload of the extra field `id` within `extra`, or undefined. */
function findExtra(source: ByteSource, extra: Uint8Array, id: number, entry: string): Uint8Array | undefined {
  const v = view(extra);
  // Fewer than 4 trailing bytes cannot hold a field; some aligners leave such zero padding.
  for (let p = 0; p + 4 <= extra.length; ) {
    const fieldId = v.getUint16(p, true);
    const length = v.getUint16(p + 2, true);
    if (p + 4 + length > extra.length) throw corrupt(source, "an extra field runs past the end of its header", entry);
    if (fieldId === id) return extra.subarray(p + 4, p + 4 + length);
    p += 4 + length;
  }
  return undefined;
}

interface CentralRecord {
  name: string;
  nameBytes: Uint8Array;
  size: number;
  crc32: number;
  localHeaderOffset: number;
}

function parseCentralDirectory(source: ByteSource, cd: Uint8Array, end: EndRecord): CentralRecord[] {
  const v = view(cd);
  const records: CentralRecord[] = [];
  let p = 0;
  for (let i = 0; i < end.count; i++) {
    if (p + CENTRAL_HEADER_SIZE > cd.length || v.getUint32(p, true) !== SIG_CENTRAL) {
      throw corrupt(source, `central directory entry ${i} of ${end.count} is missing or has a bad signature`);
    }
    const flags = v.getUint16(p + 8, true);
    const method = v.getUint16(p + 10, true);
    const crc = v.getUint32(p + 16, true);
    let compressed = v.getUint32(p + 20, true);
    let size = v.getUint32(p + 24, true);
    const nameLength = v.getUint16(p + 28, true);
    const extraLength = v.getUint16(p + 30, true);
    const commentLength = v.getUint16(p + 32, true);
    let diskStart = v.getUint16(p + 34, true);
    let localHeaderOffset = v.getUint32(p + 42, true);
    const next = p + CENTRAL_HEADER_SIZE + nameLength + extraLength + commentLength;
    if (next > cd.length) throw corrupt(source, `central directory entry ${i} runs past the end of the central directory`);
    const nameBytes = cd.subarray(p + CENTRAL_HEADER_SIZE, p + CENTRAL_HEADER_SIZE + nameLength);
    const name = utf8.decode(nameBytes);
    const extra = cd.subarray(p + CENTRAL_HEADER_SIZE + nameLength, p + CENTRAL_HEADER_SIZE + nameLength + extraLength);

    if (flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION)) {
      throw new UnsupportedFormatError(
        `${source.name}: entry "${name}" is encrypted; savepoint reads only unencrypted checkpoints. Decrypt the archive first.`,
        { subject: source.name },
      );
    }
    if (method !== METHOD_STORED) {
      throw new UnsupportedFormatError(
        `${source.name}: entry "${name}" is compressed (zip method ${method}); torch.save writes stored entries only. ` +
          "Re-save the checkpoint with torch.save or re-zip it without compression (zip -0).",
        { subject: source.name },
      );
    }

    if (size === MAX_U32 || compressed === MAX_U32 || localHeaderOffset === MAX_U32 || diskStart === MAX_U16) {
      const z = findExtra(source, extra, EXTRA_ZIP64, name);
      const zv = z && view(z);
      let q = 0;
      const take = (bytes: number): number => {
        if (!zv || q + bytes > zv.byteLength) throw corrupt(source, "the zip64 extra field is missing or too short", name);
        const value = bytes === 8 ? u64(zv, q) : zv.getUint32(q, true);
        q += bytes;
        return value;
      };
      // The zip64 field holds only the values whose 32/16-bit fields overflowed, in this order.
      if (size === MAX_U32) size = take(8);
      if (compressed === MAX_U32) compressed = take(8);
      if (localHeaderOffset === MAX_U32) localHeaderOffset = take(8);
      if (diskStart === MAX_U16) diskStart = take(4);
    }
    if (diskStart !== 0) {
      throw new UnsupportedFormatError(
        `${source.name}: entry "${name}" lives on another disk of a split archive; join the parts into one file first.`,
        { subject: source.name },
      );
    }
    if (compressed !== size) {
      throw corrupt(source, `stored entry has compressed size ${compressed} but size ${size}`, name);
    }
    if (localHeaderOffset + LOCAL_HEADER_SIZE + nameLength + size > end.cdOffset) {
      throw corrupt(
        source,
        `header at offset ${localHeaderOffset} plus ${size} data bytes runs past the start of the central directory at ${end.cdOffset}`,
        name,
      );
    }
    records.push({ name, nameBytes, size, crc32: crc, localHeaderOffset });
    p = next;
  }
  return records;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Reads one local header and cross-checks it against the central record; returns the data offset. */
async function readLocalHeader(source: ByteSource, record: CentralRecord, cdOffset: number): Promise<number> {
  const { name, localHeaderOffset: at } = record;
  const guess = Math.min(LOCAL_HEADER_SIZE + record.nameBytes.length + LOCAL_READ_SLACK, cdOffset - at);
  let header = await source.read(at, guess);
  let v = view(header);
  if (v.getUint32(0, true) !== SIG_LOCAL) {
    throw corrupt(source, `no local file header at offset ${at}, where the central directory points`, name);
  }
  const flags = v.getUint16(6, true);
  const method = v.getUint16(8, true);
  const nameLength = v.getUint16(26, true);
  const extraLength = v.getUint16(28, true);
  const headerLength = LOCAL_HEADER_SIZE + nameLength + extraLength;
  if (at + headerLength + record.size > cdOffset) {
    throw corrupt(source, `local header at offset ${at} and ${record.size} data bytes run into the central directory`, name);
  }
  if (headerLength > header.length) {
    header = await source.read(at, headerLength);
    v = view(header);
  }
  const localName = header.subarray(LOCAL_HEADER_SIZE, LOCAL_HEADER_SIZE + nameLength);
  if (!sameBytes(localName, record.nameBytes)) {
    throw corrupt(source, `local and central headers disagree: the local header names "${utf8.decode(localName)}"`, name);
  }
  if (method !== METHOD_STORED) {
    throw corrupt(source, `local and central headers disagree: the local header says compression method ${method}`, name);
  }
  if (!(flags & FLAG_DATA_DESCRIPTOR)) {
    // Without a data descriptor the local header carries the real CRC and sizes: they must agree.
    let compressed = v.getUint32(18, true);
    let size = v.getUint32(22, true);
    if (size === MAX_U32 || compressed === MAX_U32) {
      const extra = header.subarray(LOCAL_HEADER_SIZE + nameLength, headerLength);
      const z = findExtra(source, extra, EXTRA_ZIP64, name);
      if (!z || z.length < 8) throw corrupt(source, "the local header's zip64 extra field is missing or too short", name);
      const zv = view(z);
      // The local zip64 field must hold both sizes; tolerate writers that store only the overflowed one.
      if (z.length >= 16) {
        size = u64(zv, 0);
        compressed = u64(zv, 8);
      } else if (size === MAX_U32) {
        size = u64(zv, 0);
      } else {
        compressed = u64(zv, 0);
      }
    }
    const crc = v.getUint32(14, true);
    if (crc !== record.crc32 || size !== record.size || compressed !== record.size) {
      throw corrupt(
        source,
        `local and central headers disagree: local CRC 0x${crcHex(crc)} and sizes ${compressed}/${size}, ` +
          `central CRC 0x${crcHex(record.crc32)} and size ${record.size}`,
        name,
      );
    }
  }
  return at + headerLength;
}


async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Reads and validates the directory of a stored zip archive. Entry data is not read. */
export async function readZip(source: ByteSource): Promise<ZipArchive> {
  const end = await readEndRecord(source);
  const cd = end.cdSize === 0 ? new Uint8Array(0) : await source.read(end.cdOffset, end.cdSize);
  const records = parseCentralDirectory(source, cd, end);

  const seen = new Set<string>();
  for (const r of records) {
    if (seen.has(r.name)) {
      throw corrupt(source, "the name appears twice in the central directory; the archive is ambiguous", r.name);
    }
    seen.add(r.name);
  }

  const dataOffsets = await mapLimited(records, LOCAL_READ_CONCURRENCY, (r) => readLocalHeader(source, r, end.cdOffset));
  const entries: ZipEntry[] = records.map((r, i) =>
    Object.freeze({
      name: r.name,
      size: r.size,
      crc32: r.crc32,
      localHeaderOffset: r.localHeaderOffset,
      dataOffset: dataOffsets[i]!,
    }),
  );

  // Entries in file order must not reach into the next entry's header: that would make two names share bytes.
  const inFileOrder = [...entries].sort((a, b) => a.localHeaderOffset - b.localHeaderOffset);
  for (let i = 1; i < inFileOrder.length; i++) {
    const prev = inFileOrder[i - 1]!;
    const cur = inFileOrder[i]!;
    if (prev.dataOffset + prev.size > cur.localHeaderOffset) {
      throw corrupt(
        source,
        `its data [${prev.dataOffset}, ${prev.dataOffset + prev.size}) overlaps entry "${cur.name}" at offset ${cur.localHeaderOffset}`,
        prev.name,
      );
    }
  }

  const byName = new Map(entries.map((e) => [e.name, e]));
  return {
    entries: Object.freeze(entries),
    get: (name: string) => byName.get(name),
    source,
  };
}

/** Streams the entry's data in bounded chunks and checks its CRC-32 against the central directory. */
export async function verifyEntry(archive: ZipArchive, entry: ZipEntry): Promise<void> {
  const { source } = archive;
  const buffer = new Uint8Array(Math.min(entry.size, VERIFY_CHUNK));
  let crc = 0;
  for (let done = 0; done < entry.size; ) {
    const length = Math.min(buffer.length, entry.size - done);
    const chunk = await source.read(entry.dataOffset + done, length, buffer.subarray(0, length));
    crc = crc32(chunk, crc);
    done += length;
  }
  if (crc !== entry.crc32) {
    throw corrupt(
      source,
      `CRC-32 mismatch: the central directory records 0x${crcHex(entry.crc32)} but the data gives 0x${crcHex(crc)}`,
      entry.name,
    );
  }
}
