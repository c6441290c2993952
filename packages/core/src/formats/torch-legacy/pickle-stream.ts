import { CorruptCheckpointError } from "../../errors.js";
import type { ByteSource } from "../../io/byte-source.js";
import { Op } from "../pickle/opcodes.js";

/** How an opcode's argument is laid out, as in CPython's `pickletools`. */
type Arg = number | "u1len" | "u4len" | "s4len" | "u8len" | "line" | "lines2";

/** Argument layout per opcode: a fixed byte count, a length prefix, or newline-terminated text. */
const ARGS = new Map<number, Arg>([
  [Op.BININT1, 1], [Op.BINGET, 1], [Op.BINPUT, 1], [Op.PROTO, 1], [Op.EXT1, 1],
  [Op.BININT2, 2], [Op.EXT2, 2],
  [Op.BININT, 4], [Op.LONG_BINGET, 4], [Op.LONG_BINPUT, 4], [Op.EXT4, 4],
  [Op.BINFLOAT, 8], [Op.FRAME, 8], // a frame's length is a hint; its opcodes follow inline
  [Op.SHORT_BINSTRING, "u1len"], [Op.SHORT_BINBYTES, "u1len"], [Op.SHORT_BINUNICODE, "u1len"], [Op.LONG1, "u1len"],
  [Op.BINSTRING, "s4len"], [Op.LONG4, "s4len"], [Op.BINUNICODE, "u4len"], [Op.BINBYTES, "u4len"],
  [Op.BINUNICODE8, "u8len"], [Op.BINBYTES8, "u8len"], [Op.BYTEARRAY8, "u8len"],
  [Op.INT, "line"], [Op.LONG, "line"], [Op.FLOAT, "line"], [Op.STRING, "line"], [Op.UNICODE, "line"],
  [Op.PERSID, "line"], [Op.GET, "line"], [Op.PUT, "line"],
  [Op.GLOBAL, "lines2"], [Op.INST, "lines2"],
]);
const NO_ARG = new Set<number>(Object.values(Op).filter((op) => !ARGS.has(op)));

const BLOCK = 64 * 1024;

/**
 * Reads pickles that sit one after another at the start of a file (the legacy torch format has
 * five), each up to exactly its STOP: the opcodes are walked for their argument lengths only, so
 * the bytes after the last pickle (the storages) are never read, and a file cut short inside a
 * pickle is reported as truncated rather than misread.
 */
export class PickleStream {
  #buf = new Uint8Array(0);
  /** Valid bytes in #buf, which holds the file from offset 0. */
  #len = 0;
  #pos: number;

  constructor(
    private readonly source: ByteSource,
    private readonly where: string,
    start = 0,
  ) {
    this.#pos = start;
  }

  /** Absolute offset just after the last pickle read. */
  get position(): number {
    return this.#pos;
  }

  /** The bytes of the next pickle, `what` naming it in messages. */
  async next(what: string): Promise<Uint8Array> {
    const start = this.#pos;
    let p = start;
    for (;;) {
      await this.#ensure(p + 1, what);
      const op = this.#buf[p++]!;
      if (op === Op.STOP) break;
      const arg = ARGS.get(op);
      if (arg === undefined) {
        if (!NO_ARG.has(op)) throw this.#corrupt(`${what} holds the unknown pickle opcode 0x${op.toString(16)} at byte ${p - 1}`);
        continue;
      }
      if (typeof arg === "number") p += arg;
      else if (arg === "u1len") {
        await this.#ensure(p + 1, what);
        p += 1 + this.#buf[p]!;
      } else if (arg === "u4len" || arg === "s4len") {
        await this.#ensure(p + 4, what);
        const v = new DataView(this.#buf.buffer, p, 4);
        const n = arg === "s4len" ? v.getInt32(0, true) : v.getUint32(0, true);
        if (n < 0) throw this.#corrupt(`${what} has a negative length at byte ${p - 1}`);
        p += 4 + n;
      } else if (arg === "u8len") {
        await this.#ensure(p + 8, what);
        const n = new DataView(this.#buf.buffer, p, 8).getBigUint64(0, true);
        if (n > BigInt(this.source.size)) throw this.#truncated(what);
        p += 8 + Number(n);
      } else {
        p = await this.#lineEnd(p, what);
        if (arg === "lines2") p = await this.#lineEnd(p, what);
      }
    }
    this.#pos = p;
    return this.#buf.subarray(start, p);
  }

  /** Offset just after the newline that ends the text line starting at `p`. */
  async #lineEnd(p: number, what: string): Promise<number> {
    let from = p;
    for (;;) {
      const nl = this.#buf.subarray(0, this.#len).indexOf(0x0a, from);
      if (nl >= 0) return nl + 1;
      from = this.#len;
      await this.#ensure(this.#len + 1, what);
    }
  }

  /**
   * Makes bytes [0, end) available. Reads go at most one block past what a pickle needs, so the
   * storage data after the last pickle is barely touched; the buffer itself doubles as it grows.
   */
  async #ensure(end: number, what: string): Promise<void> {
    if (end <= this.#len) return;
    if (end > this.source.size) throw this.#truncated(what);
    const want = Math.min(this.source.size, Math.max(end, this.#len + BLOCK));
    if (want > this.#buf.length) {
      const grown = new Uint8Array(Math.min(this.source.size, Math.max(want, this.#buf.length * 2)));
      grown.set(this.#buf.subarray(0, this.#len));
      this.#buf = grown;
    }
    await this.source.read(this.#len, want - this.#len, this.#buf.subarray(this.#len, want));
    this.#len = want;
  }

  #truncated(what: string): CorruptCheckpointError {
    return this.#corrupt(`the file ends inside the ${what} pickle (${this.source.size} bytes in all); it is truncated`);
  }

  #corrupt(why: string): CorruptCheckpointError {
    return new CorruptCheckpointError(`${this.where}: ${why}. Re-save or re-download the checkpoint.`, { subject: this.where });
  }
}
