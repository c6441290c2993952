import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { NodeFileIO } from "@savepoint/core";
import { FIXTURES } from "../../core/test/helpers/fixtures.js";
import { runPython, skipWithoutTorch } from "../../core/test/helpers/python.js";
import { closeGroups, lightningModel, ranks, useCpu } from "./helpers.js";

/*
 * Debian's torch here is 1.13, which has no torch.distributed.checkpoint. So torch 2.x's DCP
 * reader is played by python/dcp_standin.py: a plain pickle.Unpickler with stand-ins for DCP's
 * classes (their fields, hashing and __setstate__) and the real torch for everything else, then
 * torch.load of every chunk, as FileSystemReader does. It is checked first on Lightning's own
 * checkpoint, then run on ours; our .metadata's structure is compared class by class and field by
 * field with Lightning's.
 */
const skip = skipWithoutTorch();
const here = dirname(fileURLToPath(import.meta.url));
const STANDIN = readFileSync(join(here, "python/dcp_standin.py"), "utf8");
const LIGHTNING = `${FIXTURES}/lightning-2.6`;
const standin = (...args: string[]) => JSON.parse(runPython(STANDIN, args));

let tmp: string;
beforeAll(async () => {
  await useCpu();
  tmp = mkdtempSync(join(tmpdir(), "savepoint-fsdp-torch-"));
});
afterEach(closeGroups);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let written: Promise<{ sharded: string; full: string }> | undefined;
/** Lightning's state loaded into 2 ranks, saved sharded and full by those ranks (once). */
function ourCheckpoints(): Promise<{ sharded: string; full: string }> {
  return (written ??= writeOurs());
}

async function writeOurs(): Promise<{ sharded: string; full: string }> {
  const out = { sharded: join(tmp, "ours-sharded.ckpt"), full: join(tmp, "ours-full.ckpt") };
  for (const type of ["sharded", "full"] as const) {
    const group = ranks(2, new NodeFileIO(), () => lightningModel(3), type);
    const states = group.map((r) => ({ model: r.model, optimizer: r.optimizer, step: 0, epoch: 0, config: {} as Record<string, unknown> }));
    await Promise.all(group.map((r, i) => r.fabric.load(`${LIGHTNING}/fabric-fsdp2-sharded.ckpt`, states[i])));
    await Promise.all(group.map((r, i) => r.fabric.save(out[type], { ...states[i]!, hparams: { name: "mlp", layers: [10, 16, 12, 3] } })));
  }
  return out;
}

describe.skipIf(skip)("sharded checkpoints and PyTorch", () => {
  it("the stand-in DCP reader reads Lightning's sharded checkpoint into exactly what torch.load reads from its full one", () => {
    const r = standin("read", `${LIGHTNING}/fabric-fsdp2-sharded.ckpt`, `${LIGHTNING}/fabric-fsdp2-full.ckpt`);
    expect(r.mismatches).toEqual([]);
    expect(r.tensors).toBe(24);
  });

  it("reads our sharded checkpoint (2 ranks) into the same tensors and values torch.load reads from our full one, meta.pt included", async () => {
    const { sharded, full } = await ourCheckpoints();
    const r = standin("read", sharded, full);
    expect(r.mismatches).toEqual([]);
    expect(r.keys).toEqual(["config", "epoch", "hparams", "model", "optimizer", "step"]);
    expect(r.tensors).toBe(24); // 6 weights, and exp_avg, exp_avg_sq, step for each
    // The tensors are Lightning's own (loaded from its checkpoint, resaved by us).
    const m = JSON.parse(
      runPython(
        `import sys, json, torch
ours, theirs = torch.load(sys.argv[1]), torch.load(sys.argv[2])
same = lambda a, b: a.dtype == b.dtype and torch.equal(a, b)
print(json.dumps({
  "model": all(same(ours["model"][k], v) for k, v in theirs["model"].items()),
  "optimizer": all(same(ours["optimizer"]["state"][p][s], v) for p, st in theirs["optimizer"]["state"].items() for s, v in st.items()),
  "meta": torch.load(sys.argv[3]) == {"step": 400, "epoch": 3, "config": theirs["config"], "hparams": {"name": "mlp", "layers": [10, 16, 12, 3]}},
}))`,
        [full, `${LIGHTNING}/fabric-fsdp2-full.ckpt`, `${sharded}/meta.pt`],
      ),
    );
    expect(m).toEqual({ model: true, optimizer: true, meta: true });
  });

  it("our .metadata has the classes, fields and nesting of torch 2.13's, at pickle protocol 2", async () => {
    const { sharded } = await ourCheckpoints();
    const ours = standin("skeleton", `${sharded}/.metadata`);
    const theirs = standin("skeleton", `${LIGHTNING}/fabric-fsdp2-sharded.ckpt/.metadata`);
    expect(ours).toEqual(theirs);
    expect(ours.chunk_index_is_position).toBe(true);
    const ops = standin("opcodes", `${sharded}/.metadata`);
    expect(ops.protocol).toBe(2);
    expect(ops.max_proto).toBeLessThanOrEqual(2);
  });
});
