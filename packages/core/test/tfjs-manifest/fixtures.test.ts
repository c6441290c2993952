import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { isStoredTensor, LazyTensor, type StoredTensor } from "../../src/index.js";
import { FIXTURES } from "../helpers/fixtures.js";
import { concat, readDirect, tfjsFabric } from "./util.js";
import "@tensorflow/tfjs-backend-cpu";

const DIR = `${FIXTURES}/tfjs`;
const MODELS = ["layers_model", "graph_model", "dense_graph_model", "yolov5_graph_2shards_uint8"];

interface ManifestWeight {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: string; min: number; scale: number };
}
const manifestOf = (model: string): { paths: string[]; weights: ManifestWeight[] }[] => JSON.parse(readFileSync(`${DIR}/${model}/model.json`, "utf8")).weightsManifest;
const shardBytes = (model: string): Uint8Array => concat(manifestOf(model)[0]!.paths.map((p) => new Uint8Array(readFileSync(`${DIR}/${model}/${p}`))));

describe("TensorFlow.js fixtures", () => {
  const fabric = tfjsFabric();

  for (const model of MODELS) {
    it(`${model}: every weight named and shaped as in the manifest, via Fabric and directly, file and folder`, async () => {
      const weights = manifestOf(model).flatMap((g) => g.weights);
      const viaFile = await fabric.load(`${DIR}/${model}/model.json`);
      const viaFolder = await fabric.load(`${DIR}/${model}`);
      const direct = (await readDirect(`${DIR}/${model}/model.json`)) as Record<string, StoredTensor>;
      for (const tree of [viaFile, viaFolder, direct]) {
        expect(Object.keys(tree)).toEqual(weights.map((w) => w.name));
        for (const w of weights) {
          const t = tree[w.name];
          expect(t).toBeInstanceOf(LazyTensor);
          expect([...(t as StoredTensor).shape]).toEqual(w.shape);
          expect((t as StoredTensor).dtype).toBe(w.dtype);
        }
      }
    });
  }

  for (const model of ["layers_model", "graph_model", "dense_graph_model"]) {
    it(`${model}: values are the raw float32 bytes of the .bin, in manifest order`, async () => {
      const raw = shardBytes(model);
      const tree = await fabric.load(`${DIR}/${model}/model.json`);
      const got = concat(await Promise.all(Object.values(tree).map((t) => (t as StoredTensor).bytes())));
      expect(got).toEqual(raw);
      const first = Object.values(tree)[0] as StoredTensor;
      const want = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + first.byteLength));
      expect(Array.from((await first.data()) as ArrayLike<number>)).toEqual(Array.from(want));
    });
  }

  describe("yolov5 (two shard files, uint8-quantized float32 + int32)", () => {
    const model = "yolov5_graph_2shards_uint8";
    const weights = manifestOf(model)[0]!.weights;
    const raw = shardBytes(model);
    const shard1 = readFileSync(`${DIR}/${model}/group1-shard1of2.bin`).byteLength;
    // Offsets computed independently of the reader: stored sizes summed in manifest order.
    const offsets: number[] = [];
    let cursor = 0;
    for (const w of weights) {
      offsets.push(cursor);
      cursor += w.shape.reduce((a, b) => a * b, 1) * (w.quantization ? 1 : 4);
    }
    const byHand = (i: number): number[] | Int32Array => {
      const w = weights[i]!;
      const n = w.shape.reduce((a, b) => a * b, 1);
      if (!w.quantization) return new Int32Array(raw.slice(offsets[i]!, offsets[i]! + 4 * n).buffer);
      const { min, scale } = w.quantization;
      return Array.from(raw.subarray(offsets[i]!, offsets[i]! + n), (q) => Math.fround(q * scale + min));
    };

    it("the shard files hold exactly the manifest's bytes", () => {
      expect(cursor).toBe(raw.byteLength);
      expect(weights).toHaveLength(197);
    });

    it("the weight crossing the shard boundary matches bytes assembled by hand from both files", async () => {
      const name = "StatefulPartitionedCall/model/tf_conv_15/sequential_5/conv2d_15/Conv2D/ReadVariableOp";
      const i = weights.findIndex((w) => w.name === name);
      expect(offsets[i]).toBe(1004168);
      expect(offsets[i]! < shard1 && offsets[i]! + 3 * 3 * 64 * 128 > shard1).toBe(true);
      const tree = await tfjsFabric().load(`${DIR}/${model}/model.json`);
      const t = tree[name] as StoredTensor;
      expect(t.dtype).toBe("float32");
      expect([...t.shape]).toEqual([3, 3, 64, 128]);
      const want = byHand(i) as number[];
      expect(Array.from((await t.data()) as ArrayLike<number>)).toEqual(want);
      // A range straddling the boundary, not aligned to elements.
      const boundary = (shard1 - offsets[i]!) * 4;
      const part = await t.readRange(boundary - 7, 30);
      const full = new Uint8Array(new Float32Array(want).buffer);
      expect(part).toEqual(full.subarray(boundary - 7, boundary + 23));
      const into = new Uint8Array(30);
      expect(await t.readRange(boundary - 7, 30, into)).toBe(into);
      expect(into).toEqual(full.subarray(boundary - 7, boundary + 23));
    });

    it("every weight (quantized and int32) matches the hand decoding", async () => {
      const tree = await readDirect(`${DIR}/${model}`) as Record<string, StoredTensor>;
      for (let i = 0; i < weights.length; i++) {
        const t = tree[weights[i]!.name]!;
        expect(isStoredTensor(t)).toBe(true);
        expect(Array.from((await t.data()) as ArrayLike<number>), weights[i]!.name).toEqual(Array.from(byHand(i)));
      }
    });
  });
});
