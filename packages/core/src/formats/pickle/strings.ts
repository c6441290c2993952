/**
 * Decoding of the string payloads a pickle carries: UTF-8 as Python writes it (`surrogatepass`,
 * so lone surrogates survive), latin-1, and the two protocol-0 escape syntaxes.
 * Every function returns null for bytes Python itself would reject; callers name the offset.
 */

const utf8 = new TextDecoder("utf-8", { fatal: true });
const CHUNK = 8192;

/** Python's `bytes.decode("utf-8", "surrogatepass")`, or null when the bytes are not valid. */
export function decodeUtf8(bytes: Uint8Array, start: number, end: number): string | null {
  if (end - start <= 64) {
    // Short ASCII keys dominate state dicts; skip the decoder call for them.
    let ascii = true;
    for (let i = start; i < end; i++) if ((bytes[i] as number) >= 0x80) { ascii = false; break; }
    if (ascii) return latin1(bytes, start, end);
  }
  try {
    return utf8.decode(bytes.subarray(start, end));
  } catch {
    return decodeUtf8Surrogates(bytes, start, end);
  }
}

/** Bytes as code points 0–255 (ISO-8859-1; not the WHATWG "latin1", which is windows-1252). */
export function latin1(bytes: Uint8Array, start: number, end: number): string {
  let out = "";
  for (let i = start; i < end; i += CHUNK) {
    out += String.fromCharCode.apply(null, bytes.subarray(i, Math.min(end, i + CHUNK)) as unknown as number[]);
  }
  return out;
}

/** A Python 2 `str`: UTF-8 when it is valid UTF-8, latin-1 otherwise (both map every byte). */
export function decodePy2String(bytes: Uint8Array, start: number, end: number): string {
  try {
    return utf8.decode(bytes.subarray(start, end));
  } catch {
    return latin1(bytes, start, end);
  }
}

/** UTF-8 that also accepts encoded surrogates (ED A0..BF xx), as `surrogatepass` does. */
function decodeUtf8Surrogates(bytes: Uint8Array, start: number, end: number): string | null {
  const units: number[] = [];
  let out = "";
  let i = start;
  while (i < end) {
    const b0 = bytes[i] as number;
    let cp: number;
    let need: number;
    let min: number;
    if (b0 < 0x80) {
      cp = b0;
      need = 0;
      min = 0;
    } else if (b0 >= 0xc2 && b0 < 0xe0) {
      cp = b0 & 0x1f;
      need = 1;
      min = 0x80;
    } else if (b0 >= 0xe0 && b0 < 0xf0) {
      cp = b0 & 0x0f;
      need = 2;
      min = 0x800;
    } else if (b0 >= 0xf0 && b0 < 0xf5) {
      cp = b0 & 0x07;
      need = 3;
      min = 0x10000;
    } else {
      return null;
    }
    for (let k = 1; k <= need; k++) {
      const b = bytes[i + k];
      if (b === undefined || i + k >= end || (b & 0xc0) !== 0x80) return null;
      cp = (cp << 6) | (b & 0x3f);
    }
    if (cp < min || cp > 0x10ffff) return null;
    i += need + 1;
    if (cp > 0xffff) {
      cp -= 0x10000;
      units.push(0xd800 | (cp >> 10), 0xdc00 | (cp & 0x3ff));
    } else {
      units.push(cp);
    }
    if (units.length >= CHUNK) {
      out += String.fromCharCode.apply(null, units);
      units.length = 0;
    }
  }
  return out + String.fromCharCode.apply(null, units);
}

/**
 * Python's `codecs.escape_decode` (the STRING opcode's `'...'` body): backslash escapes of
 * `repr(str)` in Python 2. Returns the bytes, or null for an invalid escape.
 */
export function escapeDecode(bytes: Uint8Array, start: number, end: number): Uint8Array | null {
  const out = new Uint8Array(end - start);
  let n = 0;
  let i = start;
  while (i < end) {
    const c = bytes[i++] as number;
    if (c !== 0x5c) {
      out[n++] = c;
      continue;
    }
    if (i >= end) return null; // trailing backslash
    const e = bytes[i++] as number;
    switch (e) {
      case 0x0a: break; // line continuation
      case 0x5c: case 0x27: case 0x22: out[n++] = e; break;
      case 0x62: out[n++] = 0x08; break; // \b
      case 0x66: out[n++] = 0x0c; break; // \f
      case 0x74: out[n++] = 0x09; break; // \t
      case 0x6e: out[n++] = 0x0a; break; // \n
      case 0x72: out[n++] = 0x0d; break; // \r
      case 0x76: out[n++] = 0x0b; break; // \v
      case 0x61: out[n++] = 0x07; break; // \a
      case 0x78: { // \xhh
        if (i + 2 > end) return null;
        const h = hex(bytes[i]) * 16 + hex(bytes[i + 1]);
        if (Number.isNaN(h)) return null;
        out[n++] = h;
        i += 2;
        break;
      }
      default:
        if (e >= 0x30 && e <= 0x37) { // up to three octal digits
          let v = e - 0x30;
          for (let k = 0; k < 2 && i < end && (bytes[i] as number) >= 0x30 && (bytes[i] as number) <= 0x37; k++) {
            v = v * 8 + ((bytes[i++] as number) - 0x30);
          }
          out[n++] = v & 0xff;
        } else {
          out[n++] = 0x5c; // unknown escapes are kept as written
          out[n++] = e;
        }
    }
  }
  return out.subarray(0, n);
}

/**
 * Python's `raw-unicode-escape` (the UNICODE opcode): bytes are code points 0–255 except
 * `\uXXXX` and `\UXXXXXXXX`. Returns null for a malformed escape.
 */
export function rawUnicodeEscape(bytes: Uint8Array, start: number, end: number): string | null {
  const units: number[] = [];
  let out = "";
  let i = start;
  while (i < end) {
    const c = bytes[i++] as number;
    if (c !== 0x5c || i >= end) {
      units.push(c);
    } else {
      const e = bytes[i++] as number;
      const count = e === 0x75 ? 4 : e === 0x55 ? 8 : 0;
      if (count === 0) {
        units.push(c, e);
      } else {
        if (i + count > end) return null;
        let cp = 0;
        for (let k = 0; k < count; k++) cp = cp * 16 + hex(bytes[i + k]);
        if (Number.isNaN(cp) || cp > 0x10ffff) return null;
        i += count;
        if (cp > 0xffff) {
          cp -= 0x10000;
          units.push(0xd800 | (cp >> 10), 0xdc00 | (cp & 0x3ff));
        } else {
          units.push(cp);
        }
      }
    }
    if (units.length >= CHUNK) {
      out += String.fromCharCode.apply(null, units);
      units.length = 0;
    }
  }
  return out + String.fromCharCode.apply(null, units);
}

function hex(b: number | undefined): number {
  if (b === undefined) return NaN;
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x61 && b <= 0x66) return b - 0x57;
  if (b >= 0x41 && b <= 0x46) return b - 0x37;
  return NaN;
}
