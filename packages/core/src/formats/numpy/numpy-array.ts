import { itemSize } from "../../dtype.js";
import { CorruptCheckpointError } from "../../errors.js";
import { HostTensor } from "../../tensor/stored-tensor.js";
import { PyObject } from "../../tree/python-values.js";
import { byteswap, fortranToRowMajor } from "./array-layout.js";
import { NumpyDType, PY_SET_STATE } from "./numpy-dtype.js";
import { rawBytes } from "./raw-bytes.js";

/**
 * A numpy array between `_reconstruct(ndarray, (0,), b'b')` and its BUILD: the pickle memoizes
 * the object before its state arrives, so it is filled in place, and the reader swaps in
 * `result` once the pickle is done (see `numpyGlobals(...).finish`).
 */
export class PendingNumpyArray {
  /** A `HostTensor`, or an inert placeholder for arrays savepoint does not hold as tensors. */
  result: unknown;

  constructor(
    readonly module: string,
    readonly name: string,
    readonly args: unknown[],
    private readonly where: string,
  ) {
    // Without a BUILD the array stays what the pickle literally says.
    this.result = new PyObject(module, name, args);
  }

  [PY_SET_STATE](state: unknown): void {
    const placeholder = new PyObject(this.module, this.name, this.args, state);
    if (!Array.isArray(state) || (state.length !== 5 && state.length !== 4)) {
      throw new CorruptCheckpointError(`${this.where}: a numpy array has a state that is not numpy's (version, shape, dtype, is_fortran, data) tuple.`, { subject: this.where });
    }
    const [shape, dtype, fortran, data] = state.length === 5 ? state.slice(1) : state;
    this.result = numpyTensor(shape, dtype, fortran === true, data, this.where) ?? placeholder;
  }
}

/**
 * The tensor an array's parts describe, or undefined when its dtype has no savepoint equivalent
 * (object, strings, datetimes, structured): those stay inert placeholders.
 */
export function numpyTensor(shape: unknown, dtype: unknown, fortran: boolean, data: unknown, where: string): HostTensor | undefined {
  if (!(dtype instanceof NumpyDType)) throw new CorruptCheckpointError(`${where}: a numpy array has a dtype that is not a numpy.dtype.`, { subject: where });
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    throw new CorruptCheckpointError(`${where}: a numpy array has the malformed shape ${String(shape)}.`, { subject: where });
  }
  const d = dtype.dtype;
  if (d === undefined || dtype.isObject) return undefined;
  const dims = shape as number[];
  const size = itemSize(d);
  const count = dims.reduce((a, b) => a * b, 1);
  if (!Number.isSafeInteger(count * size)) throw new CorruptCheckpointError(`${where}: a numpy array of shape (${dims.join(", ")}) is impossibly large.`, { subject: where });
  let raw = rawBytes(data, count * size, where, `a numpy ${d} array of shape (${dims.join(", ")})`);
  if (dtype.bigEndian && size > 1) {
    raw = raw.slice(); // the pickle's bytes object may be shared; swap a copy
    byteswap(raw, d.startsWith("complex") ? size / 2 : size);
  }
  if (fortran) raw = fortranToRowMajor(raw, dims, size);
  return new HostTensor(d, dims, raw);
}
