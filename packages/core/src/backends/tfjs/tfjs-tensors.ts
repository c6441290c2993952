import type * as tfc from "@tensorflow/tfjs-core";
import type { DType } from "../../dtype.js";
import { StrictLoadError, UnsupportedFormatError } from "../../errors.js";
import { isStoredTensor } from "../../tensor/stored-tensor.js";
import type { TensorSource } from "../../tensor/tensor-source.js";
import { decodeBytes, uninitializedBytes } from "../../tensor/typed-arrays.js";
import { itemSize } from "../../dtype.js";
import { readTensorBytes } from "../../tensor/read-tensor-bytes.js";

/** tfjs dtypes savepoint can hold. */
export type TfjsDType = "float32" | "int32" | "bool" | "complex64";

/**
 * True for a tfjs tensor of any installed copy of tfjs-core (checked by shape, not `instanceof`,
 * so two copies of the library still recognise each other's tensors).
 */
export function isTfjsTensor(value: unknown): value is tfc.Tensor {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Partial<tfc.Tensor>;
  return typeof v.dataSync === "function" && Array.isArray(v.shape) && typeof v.dtype === "string" && "dataId" in v;
}

/** True for a `tf.Variable` (a tensor that can be assigned in place). */
export function isTfjsVariable(value: unknown): value is tfc.Variable {
  return isTfjsTensor(value) && typeof (value as tfc.Variable).assign === "function" && "trainable" in value;
}

/** savepoint dtype of a tfjs dtype. */
export function dtypeOfTfjs(dtype: string, key: string): DType {
  switch (dtype) {
    case "float32":
    case "int32":
    case "bool":
    case "complex64":
      return dtype;
    default:
      throw new UnsupportedFormatError(`${key} is a tfjs ${dtype} tensor; savepoint stores numeric and bool tensors only. Keep strings outside tensors.`, { subject: key });
  }
}

/** The tfjs dtype that holds values of a checkpoint dtype (tfjs has no float16, int64 ...). */
export function tfjsDTypeFor(dtype: DType): TfjsDType {
  switch (dtype) {
    case "int64":
    case "int32":
    case "int16":
    case "int8":
    case "uint8":
    case "uint16":
    case "uint32":
    case "uint64":
      return "int32";
    case "bool":
      return "bool";
    case "complex64":
    case "complex128":
      return "complex64";
    default:
      return "float32";
  }
}

/** Chunk size for converting dtypes: a multiple of every item size. */
const CONVERT_CHUNK = 8 << 20;

/**
 * The values of `source` as the typed array tfjs stores for `target` dtype: bytes are read straight
 * into a Float32Array/Int32Array when dtypes agree, and converted (with range checks) otherwise,
 * chunk by chunk, so no second copy of a large tensor is ever held.
 */
export async function valuesFor(source: TensorSource, target: TfjsDType, key: string): Promise<Float32Array | Int32Array | Uint8Array> {
  const same = (source.dtype === "float32" && target === "float32") || (source.dtype === "int32" && target === "int32") || (source.dtype === "complex64" && target === "complex64");
  if (same) {
    const bytes = await readTensorBytes(source);
    return target === "int32" ? new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4) : new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  }
  const size = itemSize(source.dtype);
  const count = source.byteLength / size;
  // complex128 holds two float64 per item and becomes complex64: two float32 per item.
  const perItem = source.dtype === "complex64" || source.dtype === "complex128" ? 2 : 1;
  const out = target === "bool" ? new Uint8Array(count) : target === "int32" ? new Int32Array(count) : new Float32Array(count * perItem);
  let index = 0;
  // A source may split items across chunks; carry the partial item over to the next chunk.
  let carry = new Uint8Array(0);
  for await (const raw of source.chunks(CONVERT_CHUNK)) {
    let chunk = raw;
    if (carry.byteLength > 0) {
      chunk = new Uint8Array(carry.byteLength + raw.byteLength);
      chunk.set(carry);
      chunk.set(raw, carry.byteLength);
    }
    const whole = chunk.byteLength - (chunk.byteLength % size);
    carry = chunk.slice(whole);
    const decoded = decodeBytes(source.dtype, chunk.subarray(0, whole));
    switch (target) {
      case "float32":
      case "complex64":
        if (decoded instanceof BigInt64Array || decoded instanceof BigUint64Array) {
          for (let i = 0; i < decoded.length; i++) out[index + i] = Number(decoded[i]!);
        } else {
          out.set(decoded, index);
        }
        break;
      case "bool":
        for (let i = 0; i < decoded.length; i++) out[index + i] = decoded[i] ? 1 : 0;
        break;
      case "int32":
        for (let i = 0; i < decoded.length; i++) {
          const v = Number(decoded[i]!);
          const t = Math.trunc(v);
          if (!(t >= -2147483648 && t <= 2147483647)) {
            throw new StrictLoadError(`${key}: value ${String(decoded[i])} at index ${index + i} does not fit the int32 tensor tfjs holds. Keep this value as a raw tensor (load the checkpoint without a target) instead.`, { subject: key });
          }
          out[index + i] = t;
        }
        break;
    }
    index += decoded.length;
  }
  return out;
}

/** Throws a StrictLoadError when shapes differ. */
export function checkShape(expected: readonly number[], got: readonly number[], key: string): void {
  if (expected.length !== got.length || expected.some((d, i) => d !== got[i])) {
    throw new StrictLoadError(`size mismatch for ${key}: the checkpoint has shape [${got.join(", ")}], the target has [${expected.join(", ")}]. Load a checkpoint of the same architecture, or transform it with loadRaw's \`map\`.`, { subject: key });
  }
}
