import { describe, expect, it } from "vitest";
import { chunkRanges } from "../src/staging/chunk-ranges.js";

describe("chunkRanges", () => {
  it("covers the bytes in order with a shorter last chunk", () => {
    expect(chunkRanges(10, 4)).toEqual([
      { index: 0, offset: 0, length: 4 },
      { index: 1, offset: 4, length: 4 },
      { index: 2, offset: 8, length: 2 },
    ]);
    expect(chunkRanges(8, 4).map((r) => r.length)).toEqual([4, 4]);
    expect(chunkRanges(3, 100)).toEqual([{ index: 0, offset: 0, length: 3 }]);
  });

  it("gives no chunks for an empty tensor", () => {
    expect(chunkRanges(0, 4)).toEqual([]);
  });

  it("handles sizes past 4 GiB exactly", () => {
    const r = chunkRanges(2 ** 33 + 5, 2 ** 30);
    expect(r).toHaveLength(9);
    expect(r.at(-1)).toEqual({ index: 8, offset: 2 ** 33, length: 5 });
  });

  it("rejects nonsense sizes", () => {
    expect(() => chunkRanges(-1, 4)).toThrow(RangeError);
    expect(() => chunkRanges(10, 0)).toThrow(RangeError);
    expect(() => chunkRanges(1.5, 4)).toThrow(RangeError);
  });
});
