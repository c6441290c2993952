import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Fabric, NodeFileIO, readDcpMetadata, type DcpTensorItem, type StoredTensor } from "@savepoint/core";
import { FIXTURES } from "../../core/test/helpers/fixtures.js";
import { closeGroups, fullState, lightningModel, ranks, useCpu, type Rank } from "./helpers.js";

const DIR = `${FIXTURES}/lightning-2.6`;
const SHARDED = `${DIR}/fabric-fsdp2-sharded.ckpt`;
const FULL = `${DIR}/fabric-fsdp2-full.ckpt`;
const PARAMS = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "out.weight", "out.bias"];
const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");

let tmp: string;
let truth: Record<string, string>;
beforeAll(async () => {
  await useCpu();
  tmp = mkdtempSync(join(tmpdir(), "savepoint-fsdp-fixtures-"));
  // The expected values: the full (gathered) checkpoint Lightning wrote of the same state, read by core.
  const full = (await new Fabric().load(FULL)) as Record<string, any>;
  truth = {};
  for (const k of PARAMS) {
    truth[`model:${k}`] = hex(await (full.model[k] as StoredTensor).bytes());
    truth[`opt:accumulatedFirstMoment:${k}`] = hex(await (full.optimizer.state[k].exp_avg as StoredTensor).bytes());
    truth[`opt:accumulatedSecondMoment:${k}`] = hex(await (full.optimizer.state[k].exp_avg_sq as StoredTensor).bytes());
  }
});
afterEach(closeGroups);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const requested = (r: Rank) => ({ model: r.model, optimizer: r.optimizer, step: 0, epoch: 0 });

describe("Lightning 2.6 FSDP2 checkpoints (torch 2.13) into a sharded tfjs model", () => {
  for (const [name, path] of [["sharded (DCP)", SHARDED], ["full", FULL]] as const) {
    for (const n of [1, 2, 3]) {
      it(`the ${name} checkpoint loads into ${n} rank(s): weights and Adam state equal Lightning's, bit for bit`, async () => {
        const group = ranks(n, new NodeFileIO(), () => lightningModel(3));
        const states = group.map(requested);
        const remainders = await Promise.all(group.map((r, i) => r.fabric.load(path, states[i])));
        expect(Object.keys(remainders[0]!).sort()).toEqual(["config", "scheduler"]);
        expect(states[0]!.step).toBe(400);
        expect(states[0]!.epoch).toBe(3);
        const got = fullState(group);
        for (const [k, v] of Object.entries(truth)) expect(got[k], k).toBe(v);
        expect(got["opt:iterations"]).toBe("4"); // torch's step
        for (const r of group) expect((r.optimizer as unknown as { learningRate: number }).learningRate).toBe(0.0025);
        // Sums recorded by the fixture's writer, from the model itself.
        const sums = JSON.parse(readFileSync(`${DIR}/fabric-fsdp2-sharded.truth.json`, "utf8")).model as Record<string, { sum: number }>;
        for (const k of PARAMS) {
          const values = Array.from(group[0]!.model.module.weights.find((w) => w.originalName === k.replace(".", "/"))!.read().dataSync() as Float32Array);
          expect(values.reduce((a, b) => a + b, 0)).toBeCloseTo(sums[k]!.sum, 5);
        }
      });
    }
  }

  it("saved again from 2 ranks, our .metadata describes the model and optimizer state exactly as Lightning's does", async () => {
    const group = ranks(2, new NodeFileIO(), () => lightningModel(3));
    await Promise.all(group.map((r) => r.fabric.load(SHARDED, requested(r))));
    const ours = join(tmp, "resaved.ckpt");
    await Promise.all(group.map((r) => r.fabric.save(ours, { model: r.model, optimizer: r.optimizer, step: 400 })));
    const read = (p: string) => readDcpMetadata(readFileSync(`${p}/.metadata`), { where: p, folder: p, safe: "strict" });
    const [a, b] = [read(ours), read(SHARDED)];
    const tensors = (md: typeof a) =>
      [...md.items.values()]
        .filter((i): i is DcpTensorItem => i.kind === "tensor")
        .map((i) => ({ key: i.key, dtype: i.dtype, size: i.size, chunks: i.chunks.map((c) => [c.offsets, c.sizes]), path: md.plannerData?.get(i.key) }))
        .sort((x, y) => (x.key < y.key ? -1 : 1));
    expect(tensors(a)).toEqual(tensors(b));
    // Values that are not tensors: Lightning's param_groups hold torch's Adam options, ours tfjs's.
    const common = ["optimizer.param_groups.0.lr", "optimizer.param_groups.0.betas", "optimizer.param_groups.0.eps", "optimizer.param_groups.0.params"];
    for (const k of common) {
      expect(a.items.get(k)?.kind, k).toBe("bytes");
      expect(a.plannerData?.get(k)).toEqual(b.plannerData?.get(k));
    }
    expect(a.version).toBe(b.version);
  });
});
