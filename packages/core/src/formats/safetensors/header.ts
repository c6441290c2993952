import { dtypeFromSafetensors, isDType, itemSize, safetensorsCode, type DType } from "../../dtype.js";
import { CorruptCheckpointError, InvalidArgumentError, UnsupportedFormatError } from "../../errors.js";
import type { ByteSource } from "../../io/byte-source.js";
import { parseStrictJson, StrictJsonError, wellFormed, type JsonObject, type JsonValue } from "./strict-json.js";

/** One tensor of a safetensors file. */
export interface SafetensorsEntry {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** absolute file offsets */
  readonly begin: number;
  readonly end: number;
}

/** The parsed and validated header of a safetensors file. */
export interface SafetensorsHeader {
  /** Entries in file order (ascending offsets). */
  readonly entries: readonly SafetensorsEntry[];
  readonly metadata: Readonly<Record<string, string>> | null;
  /** Absolute offset of the data section (8 + header length). */
  readonly dataStart: number;
}

/** The spec's cap (and the Rust library's): larger headers are refused before reading them. */
export const MAX_HEADER_BYTES = 100_000_000;

const METADATA_KEY = "__metadata__";
const ENTRY_FIELDS = ["dtype", "shape", "data_offsets"] as const;

/**
 * Reads and validates the header of a safetensors file. Every spec rule is checked, and sizes from
 * the file are checked against the file size before anything sized by them is allocated.
 */
export async function readSafetensorsHeader(source: ByteSource): Promise<SafetensorsHeader> {
  const file = source.name;
  const corrupt = (what: string, tensor?: string): never => {
    const about = tensor === undefined ? "" : ` (tensor ${JSON.stringify(tensor)})`;
    throw new CorruptCheckpointError(
      `${file} is not a valid safetensors file${about}: ${what}. The file is damaged or was not written by a safetensors writer; re-export or re-download it.`,
      { subject: file },
    );
  };

  if (!Number.isSafeInteger(source.size) || source.size < 8) {
    corrupt(`it is ${source.size} bytes long, shorter than the 8-byte header length`);
  }
  const prefix = await source.read(0, 8);
  const n64 = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) {
    corrupt(`the header length is ${n64} bytes, over the format's limit of ${MAX_HEADER_BYTES}`);
  }
  const n = Number(n64);
  if (n > source.size - 8) {
    corrupt(`the header length is ${n} bytes but only ${source.size - 8} bytes follow the length field (truncated file?)`);
  }
  const dataStart = 8 + n;
  const dataSize = source.size - dataStart;

  const raw = await source.read(8, n);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(raw);
  } catch {
    return corrupt("the header is not valid UTF-8");
  }
  if (!text.startsWith("{")) corrupt("the header does not start with '{'");
  let root: JsonValue;
  try {
    root = parseStrictJson(text);
  } catch (err) {
    if (err instanceof StrictJsonError) return corrupt(`the header is not valid JSON (${err.message})`);
    throw err;
  }
  if (!(root instanceof Map)) return corrupt("the header is not a JSON object");

  let metadata: Record<string, string> | null = null;
  const entries: SafetensorsEntry[] = [];
  for (const [name, value] of root) {
    if (name === METADATA_KEY) {
      metadata = readMetadata(value, corrupt);
      continue;
    }
    entries.push(readEntry(name, value, dataStart, dataSize, file, corrupt));
  }

  // The spec orders tensors by offset, not by key order: sort, then demand exact tiling.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end || compareNames(a.name, b.name));
  let cursor = dataStart;
  for (const e of entries) {
    if (e.begin < cursor) {
      corrupt(`its data_offsets [${e.begin - dataStart}, ${e.end - dataStart}] overlap the previous tensor, which ends at ${cursor - dataStart}`, e.name);
    }
    if (e.begin > cursor) {
      corrupt(`its data_offsets start at ${e.begin - dataStart} but the previous tensor ends at ${cursor - dataStart}, leaving a gap`, e.name);
    }
    cursor = e.end;
  }
  if (cursor !== source.size) {
    corrupt(`the tensors cover ${cursor - dataStart} bytes of data but the data section holds ${dataSize} bytes (${source.size - cursor} trailing bytes)`);
  }

  return {
    entries: Object.freeze(entries),
    metadata: metadata === null ? null : Object.freeze(metadata),
    dataStart,
  };
}

function readMetadata(value: JsonValue, corrupt: (what: string, tensor?: string) => never): Record<string, string> | null {
  // serde's Option in the reference reader takes `null` as "no metadata"; accept it the same way.
  if (value === null) return null;
  if (!(value instanceof Map)) return corrupt(`${METADATA_KEY} must be an object of strings`);
  const pairs: [string, string][] = [];
  for (const [k, v] of value) {
    if (typeof v !== "string") corrupt(`${METADATA_KEY}[${JSON.stringify(k)}] is ${describe(v)}, but metadata values must be strings`);
    pairs.push([k, v as string]);
  }
  // fromEntries defines own properties, so a "__proto__" key stays data.
  return Object.fromEntries(pairs);
}

function readEntry(
  name: string,
  value: JsonValue,
  dataStart: number,
  dataSize: number,
  file: string,
  corrupt: (what: string, tensor?: string) => never,
): SafetensorsEntry {
  if (!(value instanceof Map)) return corrupt(`its entry is ${describe(value)}, not an object`, name);
  for (const key of value.keys()) {
    if (!(ENTRY_FIELDS as readonly string[]).includes(key)) {
      corrupt(`its entry has the unknown field ${JSON.stringify(key)} (allowed: ${ENTRY_FIELDS.join(", ")})`, name);
    }
  }
  for (const key of ENTRY_FIELDS) if (!value.has(key)) corrupt(`its entry lacks "${key}"`, name);

  const code = value.get("dtype");
  if (typeof code !== "string") return corrupt(`its dtype is ${describe(code ?? null)}, not a string`, name);
  let dtype: DType;
  try {
    dtype = dtypeFromSafetensors(code, `tensor ${JSON.stringify(name)} in ${file}`);
  } catch (err) {
    if (!(err instanceof UnsupportedFormatError)) throw err;
    throw new UnsupportedFormatError(`${err.message} Convert the tensor to a supported dtype before saving, or load the file with the Python safetensors library.`, { cause: err, subject: file });
  }

  const shapeValue = value.get("shape");
  if (!Array.isArray(shapeValue)) return corrupt(`its shape is ${describe(shapeValue ?? null)}, not an array`, name);
  const shape: number[] = [];
  for (const d of shapeValue) {
    if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) corrupt(`its shape ${JSON.stringify(shapeValue)} must hold non-negative integers`, name);
    shape.push(d as number);
  }

  const offsets = value.get("data_offsets");
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => typeof o === "number" && Number.isSafeInteger(o) && o >= 0)) {
    return corrupt(`its data_offsets ${JSON.stringify(offsets)} must be two non-negative integers [begin, end]`, name);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) corrupt(`its data_offsets [${begin}, ${end}] end before they begin`, name);
  if (end > dataSize) corrupt(`its data_offsets [${begin}, ${end}] run past the ${dataSize}-byte data section`, name);

  // BigInt: a hostile shape can overflow doubles long before the file-size check applies.
  const needed = byteSize(dtype, shape);
  if (needed !== BigInt(end - begin)) {
    corrupt(`${code} shape [${shape.join(", ")}] needs ${needed} bytes but its data_offsets [${begin}, ${end}] span ${end - begin}`, name);
  }
  return Object.freeze({ name, dtype, shape: Object.freeze(shape), begin: dataStart + begin, end: dataStart + end });
}

function byteSize(dtype: DType, shape: readonly number[]): bigint {
  let n = BigInt(itemSize(dtype));
  for (const d of shape) n *= BigInt(d);
  return n;
}

function describe(v: JsonValue): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (v instanceof Map) return "an object";
  return `${typeof v} ${JSON.stringify(v)}`;
}

/** Orders by Unicode code point, which is UTF-8 byte order: how the Rust writer sorts names. */
export function compareNames(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x - y;
    if (x > 0xffff) i++;
  }
  return a.length - b.length;
}

/**
 * The Rust library's `Dtype` enum order (which its writer sorts by, descending). It is mostly
 * item size, so sorting by it keeps every tensor aligned to its element size.
 */
const WRITE_RANK: readonly string[] = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "C64", "F64", "I64", "U64"];

/**
 * Builds the header bytes (8-byte length + compact JSON padded with spaces to a multiple of 8).
 * Tensors are laid out as the reference writer does: dtype descending (≈ item size), then name.
 * `offsets[i]` is `[begin, end)` of `entries[i]` relative to the data section, so write the data
 * in ascending `begin` order.
 */
export function encodeSafetensorsHeader(
  entries: { name: string; dtype: DType; shape: readonly number[] }[],
  metadata?: Record<string, string>,
): { header: Uint8Array; offsets: [number, number][] } {
  const seen = new Set<string>();
  for (const e of entries) checkInput(e, seen);

  const rank = entries.map((e) => WRITE_RANK.indexOf(safetensorsCode(e.dtype)));
  const order = entries.map((_, i) => i);
  order.sort((i, j) => rank[j]! - rank[i]! || compareNames(entries[i]!.name, entries[j]!.name));

  const offsets: [number, number][] = new Array(entries.length);
  let cursor = 0;
  const parts: string[] = [];
  if (metadata !== undefined) parts.push(`${JSON.stringify(METADATA_KEY)}:${encodeMetadata(metadata)}`);
  for (const i of order) {
    const e = entries[i]!;
    const size = Number(byteSize(e.dtype, e.shape));
    const end = cursor + size;
    if (!Number.isSafeInteger(end)) {
      throw new InvalidArgumentError(`tensors up to ${JSON.stringify(e.name)} total more than 2^53 bytes; split the checkpoint into shards.`);
    }
    offsets[i] = [cursor, end];
    parts.push(`${JSON.stringify(e.name)}:{"dtype":${JSON.stringify(safetensorsCode(e.dtype))},"shape":[${e.shape.join(",")}],"data_offsets":[${cursor},${end}]}`);
    cursor = end;
  }

  const json = new TextEncoder().encode(`{${parts.join(",")}}`);
  const padded = Math.ceil(json.byteLength / 8) * 8;
  if (padded > MAX_HEADER_BYTES) {
    throw new InvalidArgumentError(`the safetensors header would be ${padded} bytes, over the format's limit of ${MAX_HEADER_BYTES}; use fewer tensors per file or less metadata.`);
  }
  const header = new Uint8Array(8 + padded).fill(0x20, 8 + json.byteLength);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(json, 8);
  return { header, offsets };
}

function checkInput(e: { name: string; dtype: DType; shape: readonly number[] }, seen: Set<string>): void {
  if (typeof e.name !== "string" || e.name.length === 0) {
    throw new InvalidArgumentError(`a safetensors tensor name must be a non-empty string, got ${JSON.stringify(e.name)}; give every tensor a name.`);
  }
  const label = JSON.stringify(e.name);
  if (!wellFormed(e.name)) throw new InvalidArgumentError(`tensor name ${label} has an unpaired UTF-16 surrogate and cannot be stored as UTF-8; rename it.`);
  if (e.name === METADATA_KEY) throw new InvalidArgumentError(`a tensor cannot be named ${METADATA_KEY}: safetensors reserves that key for metadata; rename it.`);
  if (seen.has(e.name)) throw new InvalidArgumentError(`tensor name ${label} appears twice; safetensors names must be unique.`);
  seen.add(e.name);
  if (!isDType(e.dtype)) throw new InvalidArgumentError(`tensor ${label} has unknown dtype ${JSON.stringify(e.dtype)}.`);
  if (!WRITE_RANK.includes(safetensorsCode(e.dtype))) {
    throw new UnsupportedFormatError(`tensor ${label} is ${e.dtype}, which the safetensors format has no code for; convert it (e.g. complex128 to two float64 tensors) or save in the torch format.`, { subject: e.name });
  }
  if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new InvalidArgumentError(`tensor ${label} has shape ${JSON.stringify(e.shape)}; dimensions must be non-negative integers.`);
  }
}

function encodeMetadata(metadata: Record<string, string>): string {
  if (typeof metadata !== "object" || metadata === null || Array.isArray(metadata)) {
    throw new InvalidArgumentError(`safetensors metadata must be an object of strings, got ${describeJs(metadata)}.`);
  }
  const parts: string[] = [];
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== "string") {
      throw new InvalidArgumentError(`safetensors metadata value ${JSON.stringify(k)} is ${describeJs(v)}; safetensors metadata holds only strings, so JSON.stringify it first.`);
    }
    if (!wellFormed(k) || !wellFormed(v)) throw new InvalidArgumentError(`safetensors metadata entry ${JSON.stringify(k)} has an unpaired UTF-16 surrogate and cannot be stored as UTF-8.`);
    parts.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
  }
  return `{${parts.join(",")}}`;
}

function describeJs(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return `a ${typeof v}`;
}
