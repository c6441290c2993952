import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { convertCheckpoint } from "../../src/cli/convert-command.js";
import { treeEntries } from "../../src/cli/tree-entries.js";
import { Fabric, type StoredTensor } from "../../src/index.js";
import { FIXTURES, loadExpected, REPO } from "../helpers/fixtures.js";

const CLI = join(REPO, "packages/core/dist/cli.js");
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "savepoint-cli-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every tensor of a checkpoint as key → dtype/shape/hex of its bytes. */
async function tensorsOf(path: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const e of treeEntries(await new Fabric().load(path))) {
    if (e.kind !== "tensor") continue;
    const t = e.value as StoredTensor;
    out.set(e.key, `${t.dtype}[${t.shape}]:${Buffer.from(await t.bytes()).toString("hex")}`);
  }
  return out;
}

describe("savepoint convert", () => {
  it("round-trips a Lightning checkpoint through safetensors and back to torch bit for bit, values included", async () => {
    const src = `${FIXTURES}/lightning-2.6/fabric-single.ckpt`;
    const original = await tensorsOf(src);
    expect(original.size).toBeGreaterThan(10);
    await convertCheckpoint(src, join(dir, "a.safetensors"));
    await convertCheckpoint(join(dir, "a.safetensors"), join(dir, "b.ckpt"));
    expect(await tensorsOf(join(dir, "a.safetensors"))).toEqual(original);
    expect(await tensorsOf(join(dir, "b.ckpt"))).toEqual(original);
    const back = await new Fabric().load(join(dir, "b.ckpt"));
    const orig = await new Fabric().load(src);
    expect(back.step).toBe(orig.step);
    expect(back.config).toEqual(orig.config);
  });

  it("round-trips through sharded safetensors with several shards bit for bit", async () => {
    const src = `${FIXTURES}/burn/mnist/mnist.pt`;
    const original = await tensorsOf(src);
    const index = join(dir, "shards", "model.safetensors.index.json");
    await convertCheckpoint(src, index, { maxShardSize: 300_000 });
    expect(readdirSync(join(dir, "shards")).filter((f) => f.endsWith(".safetensors")).length).toBeGreaterThan(2);
    expect(await tensorsOf(index)).toEqual(original);
    await convertCheckpoint(index, join(dir, "mnist-again.pt"));
    expect(await tensorsOf(join(dir, "mnist-again.pt"))).toEqual(original);
    await convertCheckpoint(index, join(dir, "mnist.safetensors"));
    expect(await tensorsOf(join(dir, "mnist.safetensors"))).toEqual(original);
  });

  it("runs as a command: exit 0 on success, 2 with a [savepoint] message on bad input", () => {
    const out = execFileSync(process.execPath, [CLI, "convert", `${FIXTURES}/burn/mnist/mnist.safetensors`, join(dir, "c.pt")], { encoding: "utf8" });
    expect(out).toMatch(/wrote .*c\.pt/);
    let code = 0;
    let stderr = "";
    try {
      execFileSync(process.execPath, [CLI, "convert", join(dir, "missing.pt"), join(dir, "d.pt")], { encoding: "utf8", stdio: "pipe" });
    } catch (e) {
      code = (e as { status: number }).status;
      stderr = String((e as { stderr: string }).stderr);
    }
    expect(code).toBe(2);
    expect(stderr).toMatch(/^\[savepoint\] .*missing\.pt/);
  });
});

describe("savepoint inspect", () => {
  it("--json lists every tensor with dtype, shape and size as expected.json has them", () => {
    const file = "burn/mnist/mnist.safetensors";
    const out = JSON.parse(execFileSync(process.execPath, [CLI, "inspect", "--json", `${FIXTURES}/${file}`], { encoding: "utf8" }));
    const expected = loadExpected()[file]!.entries as Record<string, { dtype: string; shape: number[] }>;
    expect(out.tensors).toBe(Object.keys(expected).length);
    for (const e of out.entries) {
      expect(expected[e.key], e.key).toBeDefined();
      expect(e.dtype).toBe(expected[e.key]!.dtype);
      expect(e.shape).toEqual(expected[e.key]!.shape);
    }
  });

  it("prints a plain tree when piped: keys, dtypes, shapes, sizes, values, no colour codes", () => {
    const out = execFileSync(process.execPath, [CLI, "inspect", `${FIXTURES}/lightning-2.6/fabric-single.ckpt`], { encoding: "utf8" });
    expect(out).toMatch(/model\.fc1\.weight\s+float32\s+\[16, 10\]\s+640 B/);
    expect(out).toMatch(/^step\s+400$/m);
    expect(out).toMatch(/tensors, .* in .*fabric-single\.ckpt/);
    expect(out).not.toMatch(/\u001b\[/);
  });
});

describe("savepoint verify and diff", () => {
  it("verify passes an intact file and exits 1 naming the record of a damaged one", async () => {
    const src = join(dir, "v.pt");
    await new Fabric().save(src, { w: (await new Fabric().load(`${FIXTURES}/burn/mnist/mnist.pt`))["conv1.weight"] as StoredTensor, step: 1 });
    const ok = JSON.parse(execFileSync(process.execPath, [CLI, "verify", "--json", src], { encoding: "utf8" }));
    expect(ok).toMatchObject({ ok: true, tensors: 1 });
    const bytes = readFileSync(src);
    const at = bytes.indexOf(Buffer.from("archive/data/0")) + 200;
    bytes[at + 64]! ^= 0x01;
    writeFileSync(join(dir, "v-bad.pt"), bytes);
    let code = 0;
    let out = "";
    try {
      execFileSync(process.execPath, [CLI, "verify", "--json", join(dir, "v-bad.pt")], { encoding: "utf8", stdio: "pipe" });
    } catch (e) {
      code = (e as { status: number }).status;
      out = String((e as { stdout: string }).stdout);
    }
    expect(code).toBe(1);
    expect(JSON.parse(out)).toMatchObject({ ok: false, kind: "CorruptCheckpointError" });
    expect(JSON.parse(out).error).toMatch(/v-bad\.pt:archive\/data\/0/);
  });

  it("diff lists added, removed and changed keys with the largest absolute difference", async () => {
    const a = join(dir, "a.pt");
    const b = join(dir, "b.pt");
    const { HostTensor } = await import("../../src/index.js");
    await new Fabric().save(a, { w: HostTensor.fromValues("float32", [3], [1, 2, 3]), gone: 1, same: "x", lr: 0.1 });
    await new Fabric().save(b, { w: HostTensor.fromValues("float32", [3], [1, 2.5, 3]), fresh: 2, same: "x", lr: 0.2 });
    const { diffCheckpoints } = await import("../../src/cli/diff-command.js");
    expect(await diffCheckpoints(a, b)).toEqual({ added: ["fresh"], removed: ["gone"], changed: [{ key: "w", reason: "values", maxAbsDiff: 0.5 }, { key: "lr", reason: "0.1 → 0.2" }] });
    expect(await diffCheckpoints(a, a)).toEqual({ added: [], removed: [], changed: [] });
    let code = 0;
    try {
      execFileSync(process.execPath, [CLI, "diff", a, b], { encoding: "utf8", stdio: "pipe" });
    } catch (e) {
      code = (e as { status: number }).status;
    }
    expect(code).toBe(1);
    expect(execFileSync(process.execPath, [CLI, "diff", a, a], { encoding: "utf8" })).toMatch(/identical/);
  });
});

describe("savepoint usage errors", () => {
  it("an unknown option exits 2 with the usage, not a stack trace", () => {
    let code = 0;
    let stderr = "";
    try {
      execFileSync(process.execPath, [CLI, "diff", "--bogus", "a", "b"], { encoding: "utf8", stdio: "pipe" });
    } catch (e) {
      code = (e as { status: number }).status;
      stderr = String((e as { stderr: string }).stderr);
    }
    expect(code).toBe(2);
    expect(stderr).toMatch(/^\[savepoint\] diff: .*--bogus/);
    expect(stderr).toMatch(/Usage: savepoint diff/);
    expect(stderr).not.toMatch(/\n\s+at /);
  });
});
