import { describe, expect, it } from "vitest";
import { HostTensor } from "../../src/index.js";
import { assembledTensor, type PlacedChunk } from "../../src/formats/dcp/assembled-tensor.js";
import { boxBytes } from "./dcp-builder.js";

/** Splits `shape` into a grid of boxes, cutting dimension d at `cuts[d]`. */
function grid(shape: number[], cuts: number[][]): { offsets: number[]; sizes: number[] }[] {
  let boxes: { offsets: number[]; sizes: number[] }[] = [{ offsets: [], sizes: [] }];
  shape.forEach((dim, d) => {
    const edges = [0, ...cuts[d]!, dim];
    boxes = boxes.flatMap((b) => edges.slice(0, -1).map((e, i) => ({ offsets: [...b.offsets, e], sizes: [...b.sizes, edges[i + 1]! - e] })));
  });
  return boxes;
}

describe("assembledTensor", () => {
  it("any byte range of a 3-d tensor cut on every dimension equals the whole's bytes, reading only overlapping chunks", async () => {
    const shape = [3, 4, 5];
    const whole = HostTensor.fromValues("int16", shape, Array.from({ length: 60 }, (_, i) => i * 7 - 100));
    const boxes = grid(shape, [[1], [1, 3], [2]]);
    const calls: number[] = [];
    const chunks: PlacedChunk[] = boxes.map((b, i) => {
      const data = boxBytes(whole, b.offsets, b.sizes);
      return { ...b, read: async (o, l) => (calls.push(i), data.slice(o, o + l)) };
    });
    const t = assembledTensor("int16", shape, chunks, "t");
    expect(Buffer.from(await t.bytes()).equals(Buffer.from(whole.raw))).toBe(true);
    let seed = 7;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let k = 0; k < 300; k++) {
      const off = rand(whole.byteLength);
      const len = 1 + rand(whole.byteLength - off);
      calls.length = 0;
      const got = await t.readRange(off, len);
      expect(Buffer.from(got).equals(Buffer.from(whole.raw.subarray(off, off + len))), `${off}+${len}`).toBe(true);
      // A chunk was read only if one of its elements lies in the range.
      const e0 = Math.floor(off / 2);
      const e1 = Math.ceil((off + len) / 2);
      boxes.forEach((b, i) => {
        let overlaps = false;
        for (let e = e0; e < e1 && !overlaps; e++) {
          const idx = [Math.floor(e / 20), Math.floor(e / 5) % 4, e % 5];
          overlaps = idx.every((x, d) => x >= b.offsets[d]! && x < b.offsets[d]! + b.sizes[d]!);
        }
        expect(calls.includes(i), `chunk ${i} for ${off}+${len}`).toBe(overlaps);
      });
    }
  });

  it("fills a caller's buffer and handles 0-d and empty tensors", async () => {
    const scalar = assembledTensor("float32", [], [{ offsets: [], sizes: [], read: async () => new Uint8Array(new Float32Array([2.5]).buffer) }], "s");
    expect([...(await scalar.data())]).toEqual([2.5]);
    const into = new Uint8Array(4);
    expect(await scalar.readRange(0, 4, into)).toBe(into);
    const empty = assembledTensor("float32", [0, 3], [{ offsets: [0, 0], sizes: [0, 3], read: async () => new Uint8Array(0) }], "e");
    expect((await empty.bytes()).length).toBe(0);
  });
});
