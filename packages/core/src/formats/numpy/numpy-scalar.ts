import { itemSize } from "../../dtype.js";
import { CorruptCheckpointError } from "../../errors.js";
import { decodeBytes } from "../../tensor/typed-arrays.js";
import { PyObject } from "../../tree/python-values.js";
import { byteswap } from "./array-layout.js";
import { NumpyDType } from "./numpy-dtype.js";
import { rawBytes } from "./raw-bytes.js";

/**
 * `numpy.core.multiarray.scalar(dtype, data)`, how `np.float64(0.1)` and friends pickle: a JS
 * number (a bigint for 64-bit integers past 2^53), a boolean for `np.bool_`, the object itself
 * for object scalars, and an inert placeholder for types without a JS equivalent (complex,
 * strings, datetimes).
 */
export function numpyScalar(module: string, name: string, args: unknown[], where: string): unknown {
  const [dtype, data] = args;
  if (!(dtype instanceof NumpyDType)) throw new CorruptCheckpointError(`${where}: a numpy scalar has a dtype that is not a numpy.dtype.`, { subject: where });
  if (dtype.isObject) return data;
  const d = dtype.dtype;
  if (d === undefined || d.startsWith("complex")) return new PyObject(module, name, args);
  const size = itemSize(d);
  const raw = rawBytes(data, size, where, `a numpy ${d} scalar`).slice();
  if (dtype.bigEndian) byteswap(raw, size);
  const value = decodeBytes(d, raw)[0]!;
  if (d === "bool") return value !== 0;
  if (typeof value === "bigint") return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  return value;
}
