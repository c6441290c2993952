import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { defaultFormats } from "../../src/formats/default-formats.js";
import { safetensorsIndexFormat } from "../../src/formats/safetensors-index/safetensors-index-format.js";
import { tfjsManifestFormat } from "../../src/formats/tfjs/tfjs-manifest-format.js";
import { Fabric, LazyTensor, type StoredTensor } from "../../src/index.js";
import { closeTo, FIXTURES, loadExpected, type ExpectedTensor } from "../helpers/fixtures.js";
import { indexFabric, sumOf } from "./util.js";
import "@tensorflow/tfjs-backend-cpu";

const DIR = "safetensors-jl/sharded";
const INDEX = `${FIXTURES}/${DIR}/model.safetensors.index.json`;

describe("the huggingface_hub-split fixture", () => {
  it("loads every tensor in weight_map order, each matching expected.json for its shard", async () => {
    const expected = loadExpected();
    const index = JSON.parse(readFileSync(INDEX, "utf8")) as { metadata: { total_size: number }; weight_map: Record<string, string> };
    const tree = await indexFabric().load(INDEX);
    expect(Object.keys(tree)).toEqual(Object.keys(index.weight_map));
    expect(Object.keys(tree)).toHaveLength(36);
    let bytes = 0;
    for (const [name, shard] of Object.entries(index.weight_map)) {
      const t = tree[name] as StoredTensor;
      expect(t).toBeInstanceOf(LazyTensor);
      const e = expected[`${DIR}/${shard}`]!.entries[name] as ExpectedTensor;
      expect(e, `${shard} ${name} in expected.json`).toBeDefined();
      expect(t.dtype, name).toBe(e.dtype);
      expect([...t.shape], name).toEqual(e.shape);
      const s = await sumOf(t);
      expect(s.nonfinite, name).toBe(e.nonfinite ?? 0);
      expect(closeTo(s.sum, e.sum, 1e-6), `${name}: ${s.sum} vs ${e.sum}`).toBe(true);
      bytes += t.byteLength;
    }
    expect(bytes).toBe(index.metadata.total_size);
  });
});

describe("registered beside the tfjs format (as in the defaults)", () => {
  it("each JSON checkpoint goes to its own format, in either order", async () => {
    for (const extra of [[tfjsManifestFormat, safetensorsIndexFormat], [safetensorsIndexFormat, tfjsManifestFormat]]) {
      const fabric = new Fabric({ formats: [...defaultFormats(), ...extra] });
      expect(Object.keys(await fabric.load(INDEX))).toHaveLength(36);
      expect(Object.keys(await fabric.load(`${FIXTURES}/tfjs/graph_model/model.json`))).toEqual(["w"]);
      expect((await fabric.formats.forRead(fabric.io, INDEX)).format.name).toBe("safetensors-index");
    }
  });
});
