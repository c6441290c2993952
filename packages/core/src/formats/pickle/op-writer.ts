import { ByteWriter } from "./byte-writer.js";
import { Op } from "./opcodes.js";

const encoder = new TextEncoder();

/**
 * Protocol-2 opcodes written one by one, for encoders that know the shape of what they write
 * (DCP's `.metadata`) and need none of the generic pickler's walk: no frames, no identity map.
 * Globals are written once and recalled from the memo, as CPython does; `put` / `get` memoise
 * anything else the caller shares.
 */
export class OpWriter {
  readonly w = new ByteWriter();
  #memo = 0;
  readonly #globals = new Map<string, number>();
  readonly #strings = new Map<string, number>();

  constructor() {
    this.w.byte2(Op.PROTO, 2);
  }

  op(code: number): void {
    this.w.byte(code);
  }

  none(): void {
    this.w.byte(Op.NONE);
  }

  bool(v: boolean): void {
    this.w.byte(v ? Op.NEWTRUE : Op.NEWFALSE);
  }

  /** An integer (any safe integer; beyond 32 bits as LONG1). */
  int(v: number): void {
    writeInt(this.w, v);
  }

  /** A str (the caller ensures it is well-formed UTF-16). */
  string(s: string): void {
    this.w.byte(Op.BINUNICODE);
    this.w.utf8WithLength(s);
  }

  /**
   * A str written once and recalled from the memo after, as CPython's pickler does for a string
   * object met again (field names, a key used in several places): smaller, and read back without
   * being decoded again.
   */
  memoString(s: string): void {
    const id = this.#strings.get(s);
    if (id !== undefined) {
      this.get(id);
      return;
    }
    this.string(s);
    this.#strings.set(s, this.put());
  }

  /** `module.name`, written the first time and recalled from the memo after. */
  global(module: string, name: string): void {
    const key = `${module}\n${name}\n`;
    const id = this.#globals.get(key);
    if (id !== undefined) {
      this.get(id);
      return;
    }
    this.w.byte(Op.GLOBAL);
    this.w.bytes(encoder.encode(key));
    this.#globals.set(key, this.put());
  }

  /** Memoises the value on top of the stack; returns its memo id for `get`. */
  put(): number {
    const id = this.#memo++;
    if (id < 256) this.w.byte2(Op.BINPUT, id);
    else {
      this.w.byte(Op.LONG_BINPUT);
      this.w.u32le(id);
    }
    return id;
  }

  get(id: number): void {
    if (id < 256) this.w.byte2(Op.BINGET, id);
    else {
      this.w.byte(Op.LONG_BINGET);
      this.w.u32le(id);
    }
  }

  /** A tuple of `n` values written by `items`, with the opcodes CPython uses for each size. */
  tuple(n: number, items: () => void): void {
    if (n === 0) {
      this.w.byte(Op.EMPTY_TUPLE);
      return;
    }
    if (n > 3) this.w.byte(Op.MARK);
    items();
    this.w.byte(n === 1 ? Op.TUPLE1 : n === 2 ? Op.TUPLE2 : n === 3 ? Op.TUPLE3 : Op.TUPLE);
  }

  /**
   * A dict of `count` entries on top of the stack filled by `entry(i)` (which writes key then
   * value), in SETITEMS batches of 1,000 as CPython writes them.
   */
  setItems(count: number, entry: (i: number) => void): void {
    for (let i = 0; i < count; i++) {
      if (i % SETITEMS_BATCH === 0 && count - i > 1) this.w.byte(Op.MARK);
      entry(i);
      if ((i + 1) % SETITEMS_BATCH === 0 || i + 1 === count) this.w.byte(i % SETITEMS_BATCH === 0 ? Op.SETITEM : Op.SETITEMS);
    }
  }

  /** Ends the pickle; returns its bytes. */
  finish(): Uint8Array {
    this.w.byte(Op.STOP);
    return this.w.finish();
  }
}

/** SETITEMS / APPENDS batch size, as CPython's pickler uses. */
export const SETITEMS_BATCH = 1000;

/** Writes an integer that is a safe integer: BININT1, BININT2, BININT, else LONG1. */
export function writeInt(w: ByteWriter, v: number): void {
  if (v >= 0 && v <= 0xff) w.byte2(Op.BININT1, v);
  else if (v >= 0 && v <= 0xffff) {
    w.byte(Op.BININT2);
    w.u16le(v);
  } else if (v >= -0x80000000 && v <= 0x7fffffff) {
    w.byte(Op.BININT);
    w.i32le(v);
  } else {
    writeLong1(w, BigInt(v));
  }
}

/** LONG1: minimal little-endian two's complement, as Python's `encode_long` (at most 255 bytes). */
export function writeLong1(w: ByteWriter, v: bigint): void {
  const out: number[] = [];
  let x = v;
  while (x !== 0n && x !== -1n) {
    out.push(Number(x & 0xffn));
    x >>= 8n;
  }
  // One more byte when the sign bit of the last one disagrees with the sign (or v is -1).
  const last = out.length > 0 ? (out[out.length - 1] as number) : 0;
  if (v < 0n && (out.length === 0 || (last & 0x80) === 0)) out.push(0xff);
  else if (v > 0n && (last & 0x80) !== 0) out.push(0);
  w.byte2(Op.LONG1, out.length);
  w.bytes(Uint8Array.from(out));
}
