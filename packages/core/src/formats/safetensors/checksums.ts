import { safetensorsCode, type DType } from "../../dtype.js";
import { CorruptCheckpointError, InvalidArgumentError } from "../../errors.js";
import type { TensorSource } from "../../tensor/tensor-source.js";
import { crc32, crcHex } from "../zip/crc32.js";
import { compareNames, encodeSafetensorsHeader, type SafetensorsHeader } from "./header.js";
import { parseStrictJson, StrictJsonError } from "./strict-json.js";

/**
 * `__metadata__` key of the per-tensor CRC-32s savepoint writes: a compact JSON object of tensor
 * name → 8 lower-case hex digits (CRC-32/IEEE, the zip checksum, of the tensor's data bytes).
 */
export const TENSOR_CRC_KEY = "savepoint.crc32";

/**
 * `__metadata__` key of the header's own CRC-32 (8 hex digits), over a canonical text of the
 * tensor table and every other metadata entry (see {@link headerCrc}). The data CRCs cannot see
 * a flipped dtype, a renamed tensor or a changed metadata value; this does.
 */
export const HEADER_CRC_KEY = "savepoint.header_crc32";

/** A tensor of the table, offsets relative to the data section. */
interface TableEntry {
  readonly name: string;
  readonly code: string;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

/**
 * CRC-32 of the header's canonical text: one line per metadata entry except {@link HEADER_CRC_KEY},
 * keys in code-point order, `JSON.stringify(key) + ":" + JSON.stringify(value)`; then one line per
 * tensor in data order (begin, end, name), `JSON.stringify(name):DTYPE:[d0,d1]:begin,end` with
 * offsets relative to the data section. Canonical rather than raw bytes so the check does not
 * depend on whitespace or key order, and so the CRC's own field needs no placeholder.
 */
export function headerCrc(metadata: Readonly<Record<string, string>>, table: readonly TableEntry[]): number {
  const lines: string[] = [];
  for (const key of Object.keys(metadata).sort(compareNames)) {
    if (key !== HEADER_CRC_KEY) lines.push(`${JSON.stringify(key)}:${JSON.stringify(metadata[key])}\n`);
  }
  const sorted = [...table].sort((a, b) => a.begin - b.begin || a.end - b.end || compareNames(a.name, b.name));
  for (const e of sorted) lines.push(`${JSON.stringify(e.name)}:${e.code}:[${e.shape.join(",")}]:${e.begin},${e.end}\n`);
  return crc32(new TextEncoder().encode(lines.join("")));
}


/**
 * The CRC-32 of each tensor's bytes, in one pass over `chunks()`. safetensors puts its header
 * before the data and a `ByteSink` only appends, so the CRCs must be known before anything is
 * written. Also checks each source streams exactly its `byteLength`.
 */
export async function tensorCrcs(tensors: readonly { name: string; tensor: TensorSource }[], chunkBytes?: number): Promise<number[]> {
  const out: number[] = [];
  for (const { name, tensor } of tensors) {
    let crc = 0;
    let seen = 0;
    for await (const chunk of tensor.chunks(chunkBytes)) {
      seen += chunk.byteLength;
      if (seen > tensor.byteLength) break;
      crc = crc32(chunk, crc);
    }
    if (seen !== tensor.byteLength) {
      throw new InvalidArgumentError(`tensor ${JSON.stringify(name)} streamed ${seen > tensor.byteLength ? "more than" : seen} of its ${tensor.byteLength} bytes; its chunks() disagrees with its dtype and shape.`, { subject: name });
    }
    out.push(crc);
  }
  return out;
}

/**
 * `metadata` plus the two checksum entries for `entries` whose data CRCs are `crcs` (same order).
 * The layout comes from `encodeSafetensorsHeader`, which does not depend on the metadata, so the
 * header CRC computed here matches the header that is then written with the returned metadata.
 */
export function withChecksums(
  entries: readonly { name: string; dtype: DType; shape: readonly number[] }[],
  crcs: readonly number[],
  metadata: Record<string, string> = {},
): Record<string, string> {
  const { offsets } = encodeSafetensorsHeader([...entries], metadata);
  const order = entries.map((_, i) => i).sort((i, j) => offsets[i]![0] - offsets[j]![0] || offsets[i]![1] - offsets[j]![1]);
  const map = `{${order.map((i) => `${JSON.stringify(entries[i]!.name)}:"${crcHex(crcs[i]!)}"`).join(",")}}`;
  const out: Record<string, string> = Object.fromEntries(Object.entries(metadata).filter(([k]) => k !== TENSOR_CRC_KEY && k !== HEADER_CRC_KEY));
  out[TENSOR_CRC_KEY] = map;
  const table = entries.map((e, i) => ({ name: e.name, code: safetensorsCode(e.dtype), shape: e.shape, begin: offsets[i]![0], end: offsets[i]![1] }));
  out[HEADER_CRC_KEY] = crcHex(headerCrc(out, table));
  return out;
}

/**
 * The expected CRC-32 of each tensor of a file savepoint wrote, after checking the header's own
 * CRC; `undefined` for files without checksums (any file from another writer), which load unchecked.
 * `file` names the file in errors.
 */
export function readChecksums(header: SafetensorsHeader, file: string): ReadonlyMap<string, number> | undefined {
  const metadata = header.metadata;
  if (metadata === null) return undefined;
  const damaged = (what: string): never => {
    throw new CorruptCheckpointError(
      `${file} is damaged: ${what}. Restore it from another copy or save it again (or load with \`verify: false\` to read it anyway).`,
      { subject: file },
    );
  };

  const headerText = metadata[HEADER_CRC_KEY];
  if (headerText !== undefined) {
    const expected = parseHex8(headerText);
    if (expected === undefined) damaged(`__metadata__["${HEADER_CRC_KEY}"] is ${JSON.stringify(headerText)}, not 8 hex digits`);
    const table = header.entries.map((e) => ({
      name: e.name,
      code: safetensorsCode(e.dtype),
      shape: e.shape,
      begin: e.begin - header.dataStart,
      end: e.end - header.dataStart,
    }));
    const actual = headerCrc(metadata, table);
    if (actual !== expected) {
      damaged(`its header (tensor names, dtypes, shapes, offsets or metadata) has CRC-32 ${crcHex(actual)} but __metadata__["${HEADER_CRC_KEY}"] records ${headerText}`);
    }
  }

  const mapText = metadata[TENSOR_CRC_KEY];
  if (mapText === undefined) return undefined;
  let root;
  try {
    root = parseStrictJson(mapText);
  } catch (err) {
    if (!(err instanceof StrictJsonError)) throw err;
    return damaged(`__metadata__["${TENSOR_CRC_KEY}"] is not valid JSON (${err.message})`);
  }
  if (!(root instanceof Map)) return damaged(`__metadata__["${TENSOR_CRC_KEY}"] is not a JSON object`);
  const out = new Map<string, number>();
  for (const [name, value] of root) {
    const crc = typeof value === "string" ? parseHex8(value) : undefined;
    if (crc === undefined) damaged(`__metadata__["${TENSOR_CRC_KEY}"] gives tensor ${JSON.stringify(name)} the CRC ${JSON.stringify(value)}, not 8 hex digits`);
    out.set(name, crc!);
  }
  for (const e of header.entries) {
    const crc = out.get(e.name);
    if (crc === undefined) damaged(`tensor ${JSON.stringify(e.name)} has no CRC in __metadata__["${TENSOR_CRC_KEY}"]`);
    // Empty tensors are never read, so their (always zero) CRC is checked here.
    if (e.begin === e.end && crc !== 0) damaged(`__metadata__["${TENSOR_CRC_KEY}"] records ${crcHex(crc!)} for the empty tensor ${JSON.stringify(e.name)}, whose CRC-32 is 00000000`);
  }
  if (out.size !== header.entries.length) {
    const names = new Set(header.entries.map((e) => e.name));
    const extra = [...out.keys()].find((n) => !names.has(n));
    damaged(`__metadata__["${TENSOR_CRC_KEY}"] lists tensor ${JSON.stringify(extra)}, which the header does not hold`);
  }
  return out;
}

function parseHex8(text: string): number | undefined {
  return /^[0-9a-f]{8}$/.test(text) ? Number.parseInt(text, 16) : undefined;
}

/** Verified reads go in pieces of this size, the next piece read while this one is checksummed. */
const PIECE = 1 << 20;
/**
 * After a read, a tensor's unread tail up to this size is read and checked at once, so a prefix
 * of a small tensor is not handed out unchecked; small, since streaming reads re-read it.
 */
const SHORT_TAIL = 1 << 20;

type Reader = (offset: number, length: number, into?: Uint8Array) => Promise<Uint8Array>;

/**
 * The bytes of one tensor, checked against its recorded CRC-32 without a second pass in the usual
 * case: reads that walk the tensor from its start (the whole tensor, or `chunks()` in order) keep a
 * running CRC, compared when the last byte arrives, so a damaged tensor fails on the read that
 * completes it. A read that jumps ahead verifies the whole tensor first, once. A read that stops
 * short of the end checks a small remaining tail right away, so partial reads of small tensors
 * are never handed out unchecked.
 */
export class CheckedTensorBytes {
  #verified = false;
  #crc = 0;
  #next = 0;
  #failure: CorruptCheckpointError | undefined;

  constructor(
    private readonly readRaw: Reader,
    private readonly size: number,
    private readonly expected: number,
    /** The file, for messages. */
    private readonly file: string,
    private readonly tensor: string,
  ) {}

  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    if (this.#failure) throw this.#failure;
    if (!this.#verified && offset !== this.#next) await this.#verifyWhole();
    if (this.#verified || length === 0) return this.readRaw(offset, length, into);

    const out = into ?? new Uint8Array(length);
    let pending: Promise<Uint8Array> | undefined = this.readRaw(offset, Math.min(PIECE, length), out.subarray(0, Math.min(PIECE, length)));
    try {
      for (let at = 0; at < length; ) {
        const n = Math.min(PIECE, length - at);
        const piece = (await pending!).subarray(0, n);
        pending = at + n < length ? this.readRaw(offset + at + n, Math.min(PIECE, length - at - n), out.subarray(at + n, at + n + Math.min(PIECE, length - at - n))) : undefined;
        if (piece.buffer !== out.buffer || piece.byteOffset !== out.byteOffset + at) out.set(piece, at);
        this.#fold(piece, offset + at);
        at += n;
      }
    } catch (err) {
      // A mismatch with the next piece still being read: let it settle unobserved.
      pending?.catch(() => {});
      throw err;
    }
    const rest = this.size - this.#next;
    if (!this.#verified && rest > 0 && rest <= SHORT_TAIL) this.#fold(await this.readRaw(this.#next, rest), this.#next);
    return out;
  }

  /** Folds bytes at `at` into the running CRC when they are the next ones (a concurrent reader may have gone ahead). */
  #fold(bytes: Uint8Array, at: number): void {
    if (this.#verified || at !== this.#next) return;
    this.#crc = crc32(bytes, this.#crc);
    this.#next += bytes.byteLength;
    if (this.#next === this.size) this.#check(this.#crc);
  }

  async #verifyWhole(): Promise<void> {
    let crc = 0;
    const scratch = new Uint8Array(Math.min(PIECE, this.size));
    for (let at = 0; at < this.size; at += PIECE) {
      const n = Math.min(PIECE, this.size - at);
      crc = crc32((await this.readRaw(at, n, scratch.subarray(0, n))).subarray(0, n), crc);
    }
    if (!this.#verified) this.#check(crc);
  }

  #check(crc: number): void {
    if (crc >>> 0 === this.expected >>> 0) {
      this.#verified = true;
      return;
    }
    this.#failure = new CorruptCheckpointError(
      `${this.file} is damaged: tensor ${JSON.stringify(this.tensor)} has CRC-32 ${crcHex(crc)} but __metadata__["${TENSOR_CRC_KEY}"] records ${crcHex(this.expected)}. ` +
        "Restore the file from another copy or save it again (or load with `verify: false` to read it anyway).",
      { subject: this.file },
    );
    throw this.#failure;
  }
}
