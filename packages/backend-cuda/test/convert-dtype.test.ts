import { decodeBytes, encodeValues, StrictLoadError } from "@savepoint/core";
import { describe, expect, it } from "vitest";
import { convertDType } from "../src/tensor/convert-dtype.js";

const values = (dtype: Parameters<typeof decodeBytes>[0], bytes: Uint8Array) => Array.from(decodeBytes(dtype, bytes), Number);

describe("convertDType", () => {
  it("returns the bytes untouched when dtypes agree", () => {
    const b = encodeValues("float32", [1, 2]);
    expect(convertDType(b, "float32", "float32", "k")).toBe(b);
  });

  it("narrows and widens floats", () => {
    expect(values("float32", convertDType(encodeValues("float16", [1.5, -2, 0.25]), "float16", "float32", "k"))).toEqual([1.5, -2, 0.25]);
    expect(values("float32", convertDType(encodeValues("bfloat16", [8, -0.5]), "bfloat16", "float32", "k"))).toEqual([8, -0.5]);
    expect(values("float16", convertDType(encodeValues("float64", [1 / 3]), "float64", "float16", "k"))[0]).toBeCloseTo(1 / 3, 3);
    expect(values("float64", convertDType(encodeValues("int64", [5, -6]), "int64", "float64", "k"))).toEqual([5, -6]);
  });

  it("converts integers that fit and names the key and value of one that does not", () => {
    expect(values("int32", convertDType(encodeValues("int64", [5, -6, 2147483647]), "int64", "int32", "k"))).toEqual([5, -6, 2147483647]);
    expect(values("uint8", convertDType(encodeValues("int32", [0, 255]), "int32", "uint8", "k"))).toEqual([0, 255]);
    expect(() => convertDType(encodeValues("int64", [0, 2 ** 40]), "int64", "int32", "layer.w")).toThrow(StrictLoadError);
    expect(() => convertDType(encodeValues("int32", [-1]), "int32", "uint8", "layer.w")).toThrow(/layer\.w: value -1 at index 0/);
    expect(() => convertDType(encodeValues("float32", [NaN]), "float32", "int32", "k")).toThrow(StrictLoadError);
  });

  it("keeps 64-bit integers exact", () => {
    const big = [2n ** 62n + 1n, -(2n ** 60n)];
    expect(Array.from(decodeBytes("int64", convertDType(encodeValues("int64", big), "int64", "int64", "k")) as BigInt64Array)).toEqual(big);
    expect(Array.from(decodeBytes("uint64", convertDType(encodeValues("int64", [2n ** 62n]), "int64", "uint64", "k")) as BigUint64Array)).toEqual([2n ** 62n]);
  });

  it("maps to bool by truthiness and refuses real <-> complex", () => {
    expect(Array.from(convertDType(encodeValues("float32", [0, 2, -0.5]), "float32", "bool", "k"))).toEqual([0, 1, 1]);
    expect(() => convertDType(encodeValues("float32", [1, 2]), "float32", "complex64", "k")).toThrow(/real dtypes/);
  });
});
