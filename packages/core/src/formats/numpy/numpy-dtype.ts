import type { DType } from "../../dtype.js";
import { CorruptCheckpointError } from "../../errors.js";

/** The hook the pickle machine calls on BUILD for values our handlers produced. */
export const PY_SET_STATE = Symbol.for("savepoint.pySetState");

/** numpy type codes (`kind` + item size, as `dtype.__reduce__` writes them) that map to savepoint dtypes. */
const CODES: Record<string, DType> = {
  f2: "float16",
  f4: "float32",
  f8: "float64",
  i1: "int8",
  i2: "int16",
  i4: "int32",
  i8: "int64",
  u1: "uint8",
  u2: "uint16",
  u4: "uint32",
  u8: "uint64",
  b1: "bool",
  c8: "complex64",
  c16: "complex128",
};

/**
 * A `numpy.dtype` from a pickle: `dtype("f8", False, True)` then BUILD with
 * `(version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])`.
 * The byte order arrives only with BUILD, so the object is filled in place.
 */
export class NumpyDType {
  /** '<' little, '>' big, '|' not applicable, '=' native (numpy writes the real order). */
  byteorder = "=";
  /** Set when BUILD describes a structured or sub-array dtype, which savepoint keeps inert. */
  structured = false;
  /** Item size from BUILD for flexible types ("S", "U", "V"), -1 otherwise. */
  elsize = -1;

  constructor(
    /** The type code, e.g. "f8", "i8", "b1", "O8", "U". */
    readonly code: string,
    private readonly where: string,
  ) {}

  /** The savepoint dtype, or undefined for object, string, datetime and structured types. */
  get dtype(): DType | undefined {
    return this.structured ? undefined : CODES[this.code];
  }

  /** True for `object` arrays (their data is a list of Python values, not bytes). */
  get isObject(): boolean {
    return this.code.startsWith("O");
  }

  get bigEndian(): boolean {
    return this.byteorder === ">";
  }

  [PY_SET_STATE](state: unknown): void {
    if (!Array.isArray(state) || state.length < 8) {
      throw new CorruptCheckpointError(`${this.where}: a numpy dtype has a state that is not numpy's (version, byteorder, ...) tuple.`, { subject: this.where });
    }
    const [, byteorder, subarray, names, fields, elsize] = state as unknown[];
    if (typeof byteorder !== "string" || !["<", ">", "|", "="].includes(byteorder)) {
      throw new CorruptCheckpointError(`${this.where}: a numpy dtype has the byte order ${JSON.stringify(byteorder)}.`, { subject: this.where });
    }
    this.byteorder = byteorder;
    this.structured = subarray != null || names != null || fields != null;
    if (typeof elsize === "number") this.elsize = elsize;
  }

  toString(): string {
    return `<numpy.dtype ${this.byteorder}${this.code}>`;
  }
}
