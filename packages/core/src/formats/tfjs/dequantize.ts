import { decodeBytes, bytesOf } from "../../tensor/typed-arrays.js";
import type { TfjsQuantization } from "./manifest.js";

/**
 * Decodes quantized tfjs values to the bytes of the weight's real dtype, as tfjs-core's
 * `decodeWeights` does: q × scale + min stored as float32 (rounded for int32), halves widened.
 */
export function dequantize(stored: Uint8Array, quantization: TfjsQuantization, dtype: "float32" | "int32"): Uint8Array {
  if (quantization.dtype === "float16") return bytesOf(decodeBytes("float16", stored));
  const q = decodeBytes(quantization.dtype, stored) as Uint8Array | Uint16Array;
  const { min, scale } = quantization;
  const out = dtype === "int32" ? new Int32Array(q.length) : new Float32Array(q.length);
  if (dtype === "int32") for (let i = 0; i < q.length; i++) out[i] = Math.round(q[i]! * scale + min);
  else for (let i = 0; i < q.length; i++) out[i] = q[i]! * scale + min;
  return bytesOf(out);
}
