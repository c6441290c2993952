import { CorruptCheckpointError } from "../../errors.js";

/**
 * The bytes of a numpy buffer as the pickle carries them: `bytes` (Python 3), or a Python 2 `str`
 * the pickle machine decoded as UTF-8 when valid and latin-1 otherwise. The known byte length
 * tells the two apart: a UTF-8 decoding has as many characters as bytes only for ASCII, where
 * both encodings agree.
 */
export function rawBytes(value: unknown, expected: number, where: string, what: string): Uint8Array {
  if (value instanceof Uint8Array) {
    if (value.byteLength !== expected) throw mismatch(value.byteLength, expected, where, what);
    return value;
  }
  if (typeof value === "string") {
    if (value.length === expected && /^[\0-\xff]*$/.test(value)) {
      const out = new Uint8Array(expected);
      for (let i = 0; i < expected; i++) out[i] = value.charCodeAt(i);
      return out;
    }
    const utf8 = new TextEncoder().encode(value);
    if (utf8.byteLength === expected) return utf8;
    throw mismatch(utf8.byteLength, expected, where, what);
  }
  throw new CorruptCheckpointError(`${where}: ${what} carries its data as something other than bytes.`, { subject: where });
}

function mismatch(got: number, expected: number, where: string, what: string): CorruptCheckpointError {
  return new CorruptCheckpointError(`${where}: ${what} holds ${got} bytes of data but its shape and dtype need ${expected}. The file is damaged.`, { subject: where });
}
