/** Interop with Python's zipfile and torch (Debian's python3-torch): both directions. */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CorruptCheckpointError, UnsupportedFormatError } from "../../src/errors.js";
import { readZip, verifyEntry, type ZipArchive } from "../../src/formats/zip/reader.js";
import { PYTHON, runPython, skipWithoutTorch } from "../helpers/python.js";
import { pattern, text, writeArchive } from "./build.js";
import { MemorySource } from "./memory-io.js";

interface PyEntry {
  name: string;
  size: number;
  crc: number;
  headerOffset: number;
  dataOffset: number;
  sha256: string;
}

/** Python's view of an archive; data offsets come from the local headers, as torch computes them. */
const DESCRIBE = `
import hashlib, json, struct, sys, zipfile
path = sys.argv[1]
with zipfile.ZipFile(path) as z, open(path, "rb") as f:
    out = []
    for i in z.infolist():
        f.seek(i.header_offset)
        n, e = struct.unpack("<HH", f.read(30)[26:30])
        out.append({"name": i.filename, "size": i.file_size, "crc": i.CRC, "headerOffset": i.header_offset,
                    "dataOffset": i.header_offset + 30 + n + e, "sha256": hashlib.sha256(z.read(i)).hexdigest()})
    print(json.dumps({"entries": out, "bad": z.testzip()}))
`;

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

async function expectSameAsPython(path: string): Promise<ZipArchive> {
  const py = JSON.parse(runPython(DESCRIBE, [path])) as { entries: PyEntry[]; bad: string | null };
  expect(py.bad).toBeNull();
  const bytes = new Uint8Array(await readFile(path));
  const archive = await readZip(new MemorySource(bytes, path));
  expect(archive.entries.map((e) => e.name)).toEqual(py.entries.map((e) => e.name));
  for (const p of py.entries) {
    const e = archive.get(p.name)!;
    expect([e.size, e.crc32, e.localHeaderOffset, e.dataOffset]).toEqual([p.size, p.crc, p.headerOffset, p.dataOffset]);
    expect(sha256(bytes.subarray(e.dataOffset, e.dataOffset + e.size))).toBe(p.sha256);
    await verifyEntry(archive, e);
  }
  return archive;
}

describe.skipIf(skipWithoutTorch())("zip interop with Python", () => {
  let dir = "";
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "savepoint-zip-"));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("Python's zipfile reads our archives: names, bytes, CRCs, 64-aligned data", async () => {
    const path = join(dir, "ours.zip");
    const contents: Array<[string, Uint8Array]> = [
      ["archive/data.pkl", pattern(200, 1)],
      ["archive/data/0", pattern(4096, 2)],
      ["archive/data/1", new Uint8Array(0)],
      ["archive/データ", pattern(5, 3)],
      ["archive/version", text("3\n")],
    ];
    await writeFile(path, await writeArchive(contents));
    const archive = await expectSameAsPython(path);
    for (const e of archive.entries) expect(e.dataOffset % 64).toBe(0);
    const flags = JSON.parse(
      runPython(`import json, sys, zipfile\nprint(json.dumps([i.flag_bits for i in zipfile.ZipFile(sys.argv[1]).infolist()]))`, [path]),
    ) as number[];
    expect(flags.every((f) => f === 0x0808)).toBe(true);
  });

  it("torch's own zip reader reads records from our archive", async () => {
    const path = join(dir, "torch-reader.zip");
    const record = pattern(1000, 4);
    await writeFile(path, await writeArchive([["archive/data.pkl", text("x")], ["archive/data/0", record], ["archive/version", text("3\n")]]));
    const out = runPython(
      `import sys, torch\nr = torch._C.PyTorchFileReader(sys.argv[1])\nprint(r.get_record("data/0").hex(), r.get_record("version"))`,
      [path],
    );
    expect(out.trim()).toBe(`${Buffer.from(record).toString("hex")} b'3\\n'`);
  });

  it("reads ZIP_STORED archives written by Python to a file (sizes in local headers) and to a pipe (data descriptors)", async () => {
    const script = `
import sys, zipfile
def fill(z):
    z.writestr("a.txt", b"hello")
    z.writestr("dir/empty", b"")
    z.writestr("big.bin", bytes(range(256)) * 1000)
    z.writestr("ünï", b"x" * 77)
    z.comment = b"a comment"
if sys.argv[1] == "-":
    with zipfile.ZipFile(sys.stdout.buffer, "w", zipfile.ZIP_STORED) as z: fill(z)
else:
    with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_STORED) as z: fill(z)
`;
    const file = join(dir, "py-file.zip");
    runPython(script, [file]);
    await expectSameAsPython(file);

    const piped = join(dir, "py-pipe.zip");
    await writeFile(piped, execFileSync(PYTHON, ["-c", script, "-"]));
    await expectSameAsPython(piped);
  });

  it("reads torch.save archives", async () => {
    const path = join(dir, "tensors.pt");
    runPython(
      `import sys, torch\ntorch.save({"a": torch.arange(10), "b": torch.ones(3, 5, dtype=torch.float64), "c": "text"}, sys.argv[1])`,
      [path],
    );
    const archive = await expectSameAsPython(path);
    const names = archive.entries.map((e) => e.name);
    expect(names).toContain("tensors/data.pkl");
    expect(names).toContain("tensors/data/0");
    for (const e of archive.entries) if (e.name.includes("/data/")) expect(e.dataOffset % 64).toBe(0);
    const a = archive.get("tensors/data/0")!;
    expect(a.size).toBe(80);
  });

  it("refuses a deflated entry, naming it", async () => {
    const path = join(dir, "deflated.zip");
    runPython(
      `import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], "w") as z:\n    z.writestr("ok", b"1")\n    z.writestr("archive/data/0", b"0" * 1000, zipfile.ZIP_DEFLATED)`,
      [path],
    );
    const source = new MemorySource(new Uint8Array(await readFile(path)), path);
    const err = await readZip(source).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsupportedFormatError);
    expect((err as Error).message).toMatch(/"archive\/data\/0".*method 8/);
  });

  it("refuses duplicate names", async () => {
    const path = join(dir, "dup.zip");
    runPython(
      `import sys, warnings, zipfile\nwarnings.simplefilter("ignore")\nwith zipfile.ZipFile(sys.argv[1], "w") as z:\n    z.writestr("x", b"1")\n    z.writestr("x", b"2")`,
      [path],
    );
    const source = new MemorySource(new Uint8Array(await readFile(path)), path);
    await expect(readZip(source)).rejects.toThrow(CorruptCheckpointError);
    await expect(readZip(source)).rejects.toThrow(/"x".*twice/);
  });
});
