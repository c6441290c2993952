// Small reads of a local file share read-ahead blocks that are read through the thread pool:
// many in flight at once (a zip directory's headers, a load reading records ahead) must each get
// exactly their bytes, whatever blocks they land in, and a damaged small record is still named.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CorruptCheckpointError, Fabric, HostTensor, NodeFileIO, type StoredTensor } from "../../src/index.js";

let dir: string;
let file: string;
let content: Uint8Array;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "savepoint-small-reads-"));
  file = join(dir, "bytes.bin");
  content = Uint8Array.from({ length: 3 << 20 }, (_, i) => (i * 2654435761) >>> 24);
  writeFileSync(file, content);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("small reads of a local file", () => {
  it("concurrent reads anywhere in the file get exactly their bytes", async () => {
    const source = await new NodeFileIO().openRead(file);
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(fc.tuple(fc.nat(content.length - 1), fc.integer({ min: 0, max: 16 << 10 }), fc.boolean()), { minLength: 1, maxLength: 80 }), async (reads) => {
          const got = await Promise.all(
            reads.map(([at, n, into]) => {
              const length = Math.min(n, content.length - at);
              return source.read(at, length, into ? new Uint8Array(length) : undefined).then((b) => [at, length, b] as const);
            }),
          );
          for (const [at, length, bytes] of got) expect(Buffer.compare(bytes, content.subarray(at, at + length))).toBe(0);
        }),
        { numRuns: 60 },
      );
    } finally {
      await source.close();
    }
  });

  it("a flipped byte in one of many small records names that record", async () => {
    const path = join(dir, "small.pt");
    const state: Record<string, unknown> = {};
    for (let k = 0; k < 200; k++) state[`t${k}`] = HostTensor.fromValues("float32", [64], Float32Array.from({ length: 64 }, (_, i) => k * 100 + i + 0.5));
    await new Fabric().save(path, state);
    const bytes = readFileSync(path);
    const at = bytes.indexOf(Buffer.from(new Float32Array([13_700.5, 13_701.5]).buffer)); // t137
    expect(at).toBeGreaterThan(0);
    bytes[at]! ^= 0x40;
    writeFileSync(path, bytes);
    const ckpt = (await new Fabric().load(path)) as Record<string, StoredTensor>;
    const loc = (ckpt.t137 as unknown as { location: string }).location;
    // The neighbours, read through the same blocks, are intact; the damaged one is refused by name.
    expect(Array.from(new Float32Array((await ckpt.t136!.bytes()).slice().buffer)).slice(0, 2)).toEqual([13_600.5, 13_601.5]);
    const err = await ckpt.t137!.bytes().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptCheckpointError);
    expect((err as Error).message).toContain(`${loc} is damaged`);
  });
});
