import { itemSize, type DType } from "../../dtype.js";
import { CorruptCheckpointError, UnsupportedFormatError } from "../../errors.js";

/** How a quantized weight is stored: value = q × scale + min (uint8/uint16), or IEEE halves. */
export type TfjsQuantization =
  | { readonly dtype: "uint8" | "uint16"; readonly min: number; readonly scale: number }
  | { readonly dtype: "float16" };

/** One weight of a `weightsManifest` group, with its place in the group's concatenated bytes. */
export interface TfjsWeight {
  readonly name: string;
  readonly shape: readonly number[];
  /** The dtype the weight reads as (the manifest's `dtype`; quantized weights are decoded). */
  readonly dtype: DType;
  readonly quantization?: TfjsQuantization;
  /** Byte offset in the group's concatenated shard files. */
  readonly offset: number;
  /** Bytes stored in the shard files (quantized size for quantized weights). */
  readonly storedBytes: number;
}

/** One `weightsManifest` group: weights concatenated in order across `paths`. */
export interface TfjsGroup {
  readonly index: number;
  readonly paths: readonly string[];
  readonly weights: readonly TfjsWeight[];
  /** Sum of the weights' stored bytes: what the shard files must hold together. */
  readonly byteLength: number;
}

/** A model.json is topology plus a manifest; anything near this size is not one. */
export const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;

/** tfjs dtypes with a fixed element size, and the savepoint dtype each reads as. */
const DTYPES: Readonly<Record<string, DType>> = { float32: "float32", int32: "int32", bool: "bool", complex64: "complex64" };

/** Stored element size of each quantization dtype. */
export const QUANTIZED_ITEM_SIZE: Readonly<Record<TfjsQuantization["dtype"], number>> = { uint8: 1, uint16: 2, float16: 2 };

/**
 * Parses model.json text and validates its `weightsManifest`. Only the manifest is kept:
 * topology and metadata are not part of the weights this format returns.
 */
export function parseTfjsManifest(text: string, file: string): TfjsGroup[] {
  const fail = (what: string, at?: string): never => {
    throw new CorruptCheckpointError(
      `${file} is not a valid TensorFlow.js model.json${at ? ` (${at})` : ""}: ${what}. Re-save the model with tfjs (model.save) or re-run the tensorflowjs converter.`,
      { subject: file },
    );
  };
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch (err) {
    return fail(`it is not valid JSON (${(err as Error).message})`);
  }
  if (!isObject(root)) return fail("it is not a JSON object");
  if (!Object.hasOwn(root, "weightsManifest")) {
    throw new UnsupportedFormatError(`${file} has no "weightsManifest", so it is not a TensorFlow.js model with weights (a topology-only model.json, or another JSON file). Pass the model.json that tfjs or the tensorflowjs converter wrote.`, { subject: file });
  }
  const manifest = root.weightsManifest;
  if (!Array.isArray(manifest)) return fail(`"weightsManifest" is ${describe(manifest)}, not an array of groups`);

  const names = new Set<string>();
  return manifest.map((g, gi) => {
    const at = `weightsManifest[${gi}]`;
    if (!isObject(g)) return fail(`the group is ${describe(g)}, not an object`, at);
    const { paths, weights } = g;
    if (!Array.isArray(paths) || !paths.every((p) => typeof p === "string" && p.length > 0)) return fail(`"paths" must be an array of file names, got ${JSON.stringify(paths)}`, at);
    if (!Array.isArray(weights)) return fail(`"weights" is ${describe(weights)}, not an array`, at);
    let offset = 0;
    const parsed = weights.map((w, wi) => {
      const weight = parseWeight(w, offset, `${at}.weights[${wi}]`, file, fail);
      if (names.has(weight.name)) fail(`the weight name ${JSON.stringify(weight.name)} appears twice`, at);
      names.add(weight.name);
      offset += weight.storedBytes;
      if (!Number.isSafeInteger(offset)) fail(`the weights total more than 2^53 bytes`, at);
      return weight;
    });
    return { index: gi, paths: paths as string[], weights: parsed, byteLength: offset };
  });
}

function parseWeight(w: unknown, offset: number, at: string, file: string, fail: (what: string, at?: string) => never): TfjsWeight {
  if (!isObject(w)) return fail(`the weight is ${describe(w)}, not an object`, at);
  const { name, shape, dtype: code, quantization } = w;
  if (typeof name !== "string" || name.length === 0) return fail(`"name" must be a non-empty string, got ${JSON.stringify(name)}`, at);
  const where = `${at} ${JSON.stringify(name)}`;
  if (!Array.isArray(shape) || !shape.every((d) => typeof d === "number" && Number.isSafeInteger(d) && d >= 0)) {
    return fail(`"shape" must be an array of non-negative integers, got ${JSON.stringify(shape)}`, where);
  }
  if (typeof code !== "string") return fail(`"dtype" must be a string, got ${JSON.stringify(code)}`, where);
  const dtype = DTYPES[code];
  if (dtype === undefined || !Object.hasOwn(DTYPES, code)) {
    throw new UnsupportedFormatError(
      `${file} (${where}): dtype ${JSON.stringify(code)} is not one savepoint reads from TensorFlow.js weights (float32, int32, bool, complex64, optionally quantized as uint8/uint16/float16). Load this model with tfjs itself, or convert the weight.`,
      { subject: file },
    );
  }
  const q = quantization === undefined ? undefined : parseQuantization(quantization, code, where, fail);

  let count = 1;
  for (const d of shape as number[]) {
    count *= d;
    if (!Number.isSafeInteger(count)) fail(`shape ${JSON.stringify(shape)} has more than 2^53 elements`, where);
  }
  const storedBytes = count * (q ? QUANTIZED_ITEM_SIZE[q.dtype] : itemSize(dtype));
  if (!Number.isSafeInteger(storedBytes) || !Number.isSafeInteger(count * itemSize(dtype))) fail(`shape ${JSON.stringify(shape)} needs more than 2^53 bytes`, where);
  return { name, shape: Object.freeze([...(shape as number[])]), dtype, quantization: q, offset, storedBytes };
}

function parseQuantization(q: unknown, code: string, where: string, fail: (what: string, at?: string) => never): TfjsQuantization {
  if (!isObject(q)) return fail(`"quantization" is ${describe(q)}, not an object`, where);
  // tfjs decodes by the weight's own dtype; an original_dtype that disagrees means a broken writer.
  if (q.original_dtype !== undefined && q.original_dtype !== code) {
    fail(`quantization.original_dtype ${JSON.stringify(q.original_dtype)} differs from the weight's dtype ${JSON.stringify(code)}`, where);
  }
  if (q.dtype === "float16") {
    if (code !== "float32") fail(`float16 quantization applies to float32 weights only, not ${code}`, where);
    return { dtype: "float16" };
  }
  if (q.dtype === "uint8" || q.dtype === "uint16") {
    if (code !== "float32" && code !== "int32") fail(`${q.dtype} quantization applies to float32 or int32 weights only, not ${code}`, where);
    const { min, scale } = q;
    if (typeof min !== "number" || typeof scale !== "number" || !Number.isFinite(min) || !Number.isFinite(scale)) {
      fail(`${q.dtype} quantization needs finite numbers "min" and "scale", got ${JSON.stringify({ min, scale })}`, where);
    }
    return { dtype: q.dtype, min: min as number, scale: scale as number };
  }
  return fail(`quantization dtype ${JSON.stringify(q.dtype)} is not uint8, uint16 or float16`, where);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return typeof v === "object" ? "an object" : `${typeof v} ${JSON.stringify(v)}`;
}
