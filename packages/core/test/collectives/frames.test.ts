import { describe, expect, it } from "vitest";
import { encodeFrame, FrameDecoder } from "../../src/collectives/frames.js";

describe("TCP frames", () => {
  it("decodes frames split at every possible place, several per chunk, and a large one in many small chunks", () => {
    const messages: unknown[] = [{ a: 1 }, "x", [1, 2, 3], { bytes: new Uint8Array(3000).map((_, i) => i * 7) }, null];
    const stream = Buffer.concat(messages.flatMap((m) => encodeFrame(m)));
    for (const size of [1, 3, 4, 5, 17, 1024, stream.byteLength]) {
      const d = new FrameDecoder();
      const out: unknown[] = [];
      for (let at = 0; at < stream.byteLength; at += size) out.push(...d.push(stream.subarray(at, at + size)));
      expect(out).toEqual(messages);
    }
  });

  it("a 64 MiB frame arriving in 64 KiB chunks decodes byte for byte", () => {
    const big = new Uint8Array(64 << 20);
    for (let i = 0; i < big.length; i += 4099) big[i] = i & 255;
    const stream = Buffer.concat(encodeFrame({ big }));
    const d = new FrameDecoder();
    const out: unknown[] = [];
    for (let at = 0; at < stream.byteLength; at += 65536) out.push(...d.push(stream.subarray(at, at + 65536)));
    expect(out).toHaveLength(1);
    expect(Buffer.from((out[0] as { big: Uint8Array }).big).equals(Buffer.from(big))).toBe(true);
  });

  it("refuses a frame longer than the limit from its length prefix alone", () => {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(0xffffffff, 0);
    expect(() => new FrameDecoder().push(head)).toThrow(/exceeds the limit/);
  });
});
