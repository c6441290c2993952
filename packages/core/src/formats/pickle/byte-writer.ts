/**
 * Growable output for the pickler: fixed-size chunks filled in place (no per-byte reallocation),
 * joined once at the end. It can also splice short byte runs in at earlier offsets while joining,
 * which is how memo PUTs are added once an object turns out to be shared.
 */

const CHUNK = 64 * 1024;
/** Chunks start this small and double up to CHUNK: most pickles (a tensor's record, DCP items) are a few hundred bytes. */
const FIRST_CHUNK = 1024;
const encoder = new TextEncoder();

export class ByteWriter {
  private readonly done: Uint8Array[] = [];
  private doneBytes = 0;
  private chunk = new Uint8Array(FIRST_CHUNK);
  private view = new DataView(this.chunk.buffer);
  private pos = 0;

  /** Bytes written so far. */
  get length(): number {
    return this.doneBytes + this.pos;
  }

  /** Makes room for `n` more bytes in the current chunk. */
  private room(n: number): void {
    if (this.pos + n <= this.chunk.length) return;
    if (this.pos > 0) {
      this.done.push(this.chunk.subarray(0, this.pos));
      this.doneBytes += this.pos;
    }
    this.chunk = new Uint8Array(Math.max(Math.min(CHUNK, 2 * this.chunk.length), n));
    this.view = new DataView(this.chunk.buffer);
    this.pos = 0;
  }

  byte(b: number): void {
    this.room(1);
    this.chunk[this.pos++] = b;
  }

  byte2(a: number, b: number): void {
    this.room(2);
    this.chunk[this.pos++] = a;
    this.chunk[this.pos++] = b;
  }

  u16le(v: number): void {
    this.room(2);
    this.view.setUint16(this.pos, v, true);
    this.pos += 2;
  }

  i32le(v: number): void {
    this.room(4);
    this.view.setInt32(this.pos, v, true);
    this.pos += 4;
  }

  u32le(v: number): void {
    this.room(4);
    this.view.setUint32(this.pos, v, true);
    this.pos += 4;
  }

  f64be(v: number): void {
    this.room(8);
    this.view.setFloat64(this.pos, v, false);
    this.pos += 8;
  }

  bytes(data: Uint8Array): void {
    this.room(data.length);
    this.chunk.set(data, this.pos);
    this.pos += data.length;
  }

  /** UTF-8 of a well-formed string, preceded by its byte length as u32 little-endian. */
  utf8WithLength(text: string): void {
    const max = text.length * 3;
    if (max <= CHUNK) {
      this.room(4 + max);
      const { written } = encoder.encodeInto(text, this.chunk.subarray(this.pos + 4));
      this.view.setUint32(this.pos, written, true);
      this.pos += 4 + written;
    } else {
      const data = encoder.encode(text);
      this.u32le(data.length);
      this.bytes(data);
    }
  }

  /** Joins everything, inserting each `insert.data` at its `offset` (offsets ascending or not). */
  finish(inserts: { offset: number; data: Uint8Array }[] = []): Uint8Array {
    const parts = [...this.done, this.chunk.subarray(0, this.pos)];
    const sorted = [...inserts].sort((a, b) => a.offset - b.offset);
    const extra = sorted.reduce((n, ins) => n + ins.data.length, 0);
    const out = new Uint8Array(this.length + extra);
    let src = 0; // offset in the written stream
    let dst = 0;
    let next = 0;
    for (const part of parts) {
      let from = 0;
      while (next < sorted.length && (sorted[next] as { offset: number }).offset <= src + part.length) {
        const ins = sorted[next++] as { offset: number; data: Uint8Array };
        const upto = ins.offset - src;
        out.set(part.subarray(from, upto), dst);
        dst += upto - from;
        from = upto;
        out.set(ins.data, dst);
        dst += ins.data.length;
      }
      out.set(part.subarray(from), dst);
      dst += part.length - from;
      src += part.length;
    }
    return out;
  }
}
