import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { treeEntries } from "../../src/cli/tree-entries.js";
import { consolidateDcp } from "../../src/formats/dcp/consolidate.js";
import { assembleDcpMetadata, writeDcpMetadata } from "../../src/formats/dcp/write-dcp-metadata.js";
import { writeDcpShard } from "../../src/formats/dcp/write-dcp-shard.js";
import { CheckpointNotFoundError, Fabric, HostTensor, MemoryIO, NodeFileIO, type ByteSource, type CheckpointIO, type StoredTensor } from "../../src/index.js";
import { FIXTURES, REPO } from "../helpers/fixtures.js";

const CLI = join(REPO, "packages/core/dist/cli.js");
const LIGHTNING = `${FIXTURES}/lightning-2.6`;
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "savepoint-consolidate-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every leaf of a checkpoint: tensors as dtype/shape/hex, values as JSON. */
async function leaves(tree: unknown): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const e of treeEntries(tree)) {
    if (e.kind === "tensor") {
      const t = e.value as StoredTensor;
      out.set(e.key, `${t.dtype}[${t.shape}]:${Buffer.from(await t.bytes()).toString("hex")}`);
    } else out.set(e.key, e.kind === "value" ? JSON.stringify(e.value, (_, v) => (typeof v === "bigint" ? String(v) : v)) : e.type);
  }
  return out;
}

describe("consolidateDcp", () => {
  it("turns Lightning's sharded checkpoint into one torch file holding what Lightning's full one holds, bit for bit", async () => {
    const out = join(dir, "lightning.ckpt");
    let started: { tensors: number; bytes: number } | undefined;
    let copied = 0;
    const result = await consolidateDcp(`${LIGHTNING}/fabric-fsdp2-sharded.ckpt`, out, { io: new NodeFileIO(), onStart: (s) => (started = s), onBytes: (n) => (copied += n) });
    expect(result).toEqual(started);
    expect(result.tensors).toBe(24);
    expect(copied).toBe(result.bytes);
    const [ours, lightning] = await Promise.all([new Fabric().load(out), new Fabric().load(`${LIGHTNING}/fabric-fsdp2-full.ckpt`)]);
    expect(await leaves(ours)).toEqual(await leaves(lightning));
  });

  it("streams tensor by tensor: no read is near the size of the checkpoint", async () => {
    const mem = new MemoryIO();
    const n = 2 << 20; // an 8 MiB tensor in 4 chunks of 2 MiB, one per rank
    const big = HostTensor.fromValues("float32", [4, n / 4], Float32Array.from({ length: n }, (_, i) => i % 977));
    const written = await Promise.all(
      [0, 1, 2, 3].map((r) =>
        writeDcpShard([{ kind: "tensor", key: "model.big", size: [4, n / 4], offsets: [r, 0], source: new HostTensor("float32", [1, n / 4], big.raw.subarray(r * n, (r + 1) * n)) }], { io: mem, folder: "ck", file: `__${r}_0.distcp`, chunkBytes: 1 << 20 }),
      ),
    );
    await writeDcpMetadata(assembleDcpMetadata(written, { plannerData: new Map([["model.big", ["model", "big"]]]) }), { io: mem, folder: "ck" });
    let largest = 0;
    const io: CheckpointIO = {
      name: "measured",
      stat: (p) => mem.stat(p),
      list: (p) => mem.list(p),
      openWrite: (p) => mem.openWrite(p),
      async openRead(p) {
        const s = await mem.openRead(p);
        const src: ByteSource = { name: s.name, size: s.size, close: () => s.close(), read: (o, l, into) => ((largest = Math.max(largest, l)), s.read(o, l, into)) };
        return src;
      },
    };
    await consolidateDcp("ck", "one.ckpt", { io, chunkBytes: 256 << 10 });
    expect(largest).toBeLessThanOrEqual(2 << 20); // at most one chunk's record (its CRC is checked as it streams)
    const tree = (await new Fabric({ io: mem }).load("one.ckpt")) as { model: { big: StoredTensor } };
    expect(Buffer.from(await tree.model.big.bytes()).equals(Buffer.from(big.raw))).toBe(true);
  });

  it("refuses a folder without .metadata (a save that never finished)", async () => {
    const io = new MemoryIO();
    io.files.set("half/__0_0.distcp", new Uint8Array(8));
    await expect(consolidateDcp("half", "out.ckpt", { io })).rejects.toThrow(/no \.metadata.*not a complete sharded checkpoint/);
    await expect(consolidateDcp("nothing", "out.ckpt", { io })).rejects.toBeInstanceOf(CheckpointNotFoundError);
  });
});

describe("savepoint consolidate", () => {
  it("writes the file and says what it copied; --json for scripts; exit 2 for an unfinished folder", async () => {
    const out = join(dir, "cli.ckpt");
    const text = execFileSync(process.execPath, [CLI, "consolidate", `${LIGHTNING}/fabric-fsdp2-sharded.ckpt`, out], { encoding: "utf8" });
    expect(text).toMatch(/^wrote .*cli\.ckpt \(24 tensors, [\d.]+ KiB\)/);
    expect(Object.keys(await new Fabric().load(out)).sort()).toEqual(["config", "epoch", "model", "optimizer", "scheduler", "step"]);
    const json = JSON.parse(execFileSync(process.execPath, [CLI, "consolidate", "--json", `${LIGHTNING}/fabric-fsdp2-sharded.ckpt`, join(dir, "cli2.ckpt")], { encoding: "utf8" }));
    expect(json).toMatchObject({ tensors: 24, out: join(dir, "cli2.ckpt") });
    mkdirSync(join(dir, "unfinished"));
    const bad = spawnSync(process.execPath, [CLI, "consolidate", join(dir, "unfinished"), join(dir, "x.ckpt")], { encoding: "utf8" });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/^\[savepoint\] .*unfinished has no \.metadata/);
    expect(execFileSync(process.execPath, [CLI, "--help"], { encoding: "utf8" })).toMatch(/consolidate\s+turn a sharded/);
  });
});
