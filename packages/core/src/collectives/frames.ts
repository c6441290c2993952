import type { Socket } from "node:net";
import { deserialize, serialize } from "node:v8";

/**
 * The wire format between `savepoint run`'s coordinator and its ranks: v8 structured-clone
 * messages, each prefixed by its length.
 */

/** Largest message accepted on the wire (allGather of small objects; generous for gradients of small models). */
const MAX_FRAME = 1 << 30;

/** A length-prefixed structured-clone frame: its 4-byte length, then the body (kept apart: joining them would copy the body). */
export type Frame = readonly [head: Buffer, body: Buffer];

export function encodeFrame(message: unknown): Frame {
  const body = serialize(message);
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(body.byteLength, 0);
  return [head, body];
}

/** Sends a frame's two parts in one go (corked: one writev, not two packets). */
export function writeFrame(socket: Socket, frame: Frame): void {
  socket.cork();
  socket.write(frame[0]);
  socket.write(frame[1]);
  socket.uncork();
}

/**
 * Splits a byte stream into frames. A large frame (a gather of weights) arrives in thousands of
 * socket chunks: they are kept in a list and joined once the frame is complete, since joining on
 * every chunk would copy the frame over and over (quadratic in its size).
 */
export class FrameDecoder {
  #chunks: Buffer[] = [];
  #bytes = 0;
  /** The length of the frame being received, once its 4-byte prefix is in. */
  #need: number | undefined;

  push(chunk: Buffer): unknown[] {
    this.#chunks.push(chunk);
    this.#bytes += chunk.byteLength;
    const out: unknown[] = [];
    for (;;) {
      if (this.#need === undefined) {
        if (this.#bytes < 4) break;
        const n = this.#take(4).readUInt32BE(0);
        if (n > MAX_FRAME) throw new Error(`frame of ${n} bytes exceeds the limit of ${MAX_FRAME}`);
        this.#need = n;
      }
      if (this.#bytes < this.#need) break;
      out.push(deserialize(this.#take(this.#need)));
      this.#need = undefined;
    }
    return out;
  }

  /** Removes the first `n` bytes of the pending chunks (n ≤ what is pending). */
  #take(n: number): Buffer {
    const first = this.#chunks[0]!;
    let out: Buffer;
    if (first.byteLength >= n) {
      out = first.subarray(0, n);
      if (first.byteLength === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let at = 0;
      let used = 0; // whole chunks copied, dropped at once (shifting each would be quadratic)
      while (at < n) {
        const c = this.#chunks[used]!;
        const k = Math.min(c.byteLength, n - at);
        c.copy(out, at, 0, k);
        at += k;
        if (k === c.byteLength) used++;
        else this.#chunks[used] = c.subarray(k);
      }
      this.#chunks.splice(0, used);
    }
    this.#bytes -= n;
    return out;
  }
}
