import { CorruptCheckpointError } from "../../errors.js";
import { PyGlobal, PyObject } from "../../tree/python-values.js";
import type { GlobalLookup } from "../globals-chain.js";
import type { GlobalHandler } from "../pickle/global-handler.js";
import { numpyTensor, PendingNumpyArray } from "./numpy-array.js";
import { NumpyDType } from "./numpy-dtype.js";
import { numpyScalar } from "./numpy-scalar.js";
import { resolvePendingArrays } from "./resolve-pending.js";

/** The pushed value of `numpy.ndarray`: `_reconstruct` builds a tensor only for this exact class. */
const NDARRAY = new PyGlobal("numpy", "ndarray");
const DTYPE = new PyGlobal("numpy", "dtype");

/** numpy 1.x names its internals `numpy.core`, numpy 2 `numpy._core`; pickles carry either. */
const CORE = ["numpy.core", "numpy._core"];

/** numpy's share of the allow-list, plus the step that swaps finished arrays into the tree. */
export interface NumpyGlobals extends GlobalLookup {
  /**
   * Replaces the arrays the pickle built by their tensors (or inert placeholders). Call it on
   * each unpickled value; it costs nothing when the pickle held no arrays.
   */
  finish(value: unknown): unknown;
}

/**
 * Handlers for how numpy pickles data: arrays (`_reconstruct` + BUILD, and protocol 5's
 * `_frombuffer`) become `HostTensor`s, scalars (`np.float64(0.1)`, numpy ints and bools) JS
 * values, dtypes the objects both need. Nothing from the file runs: the handlers only decode bytes.
 */
export function numpyGlobals(where: string): NumpyGlobals {
  let pending = 0;
  const lookup = (module: string, name: string): GlobalHandler | undefined => {
    if (module === "numpy" && name === "ndarray") return { value: NDARRAY };
    if (module === "numpy" && name === "dtype") {
      return {
        value: DTYPE,
        call: (args) => {
          if (typeof args[0] !== "string") throw new CorruptCheckpointError(`${where}: numpy.dtype is called with a type code that is not a str.`, { subject: where });
          return new NumpyDType(args[0], where);
        },
      };
    }
    if (CORE.some((c) => module === `${c}.multiarray`)) {
      if (name === "_reconstruct") {
        return {
          call: (args) => {
            // Subclasses (matrix, masked arrays) are not plain data: keep them inert.
            if (args[0] !== NDARRAY) return new PyObject(module, name, args);
            pending++;
            return new PendingNumpyArray(module, name, args, where);
          },
        };
      }
      if (name === "scalar") return { call: (args) => numpyScalar(module, name, args, where) };
    }
    if (CORE.some((c) => module === `${c}.numeric`) && name === "_frombuffer") {
      // Protocol 5 in-band arrays: _frombuffer(buffer, dtype, shape, order).
      return { call: (args) => numpyTensor(args[2], args[1], args[3] === "F", args[0], where) ?? new PyObject(module, name, args) };
    }
    return undefined;
  };
  return Object.assign(lookup, {
    finish: (value: unknown) => (pending === 0 ? value : resolvePendingArrays(value)),
  });
}
