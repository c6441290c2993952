// The streaming write path to a real file: big tensors go out in pieces, several in flight at once,
// checksummed while they are written, next to thousands of small entries that go through the
// coalescing buffer, and a pickle over 1 MiB. Every entry's CRC and every value must come back.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Fabric, HostTensor, NodeFileIO, type StoredTensor } from "../../src/index.js";
import { readZip, verifyEntry } from "../../src/formats/zip/reader.js";
import { runPython, skipWithoutTorch } from "../helpers/python.js";
import { MiB, scratchDir } from "./helpers.js";

const skipPython = skipWithoutTorch();

/** float32 values base, base + 1, ... (exact below 2^24), so a misplaced byte range cannot go unnoticed. */
function tensor(elements: number, base: number): HostTensor {
  const values = new Float32Array(elements);
  for (let i = 0; i < elements; i++) values[i] = base + i;
  return new HostTensor("float32", [elements], new Uint8Array(values.buffer));
}

describe("streamed writes to a file", () => {
  it("odd-sized big tensors among thousands of small ones: every CRC and value reads back", async () => {
    const scratch = scratchDir("stream");
    try {
      const path = join(scratch.dir, "mixed.pt");
      // Sizes around the 1 MiB pieces and 8 MiB chunks: a piece left over, a chunk and a bit, one byte-ish over.
      const big = [1.5 * MiB, 2.3 * MiB, 8 * MiB + 100 * 1024, 3 * MiB, 1 * MiB + 4].map((b) => Math.floor(b / 4));
      const state: Record<string, unknown> = {};
      big.forEach((n, i) => (state[`big${i}`] = tensor(n, (i + 1) * 1e6)));
      // 14,000 small tensors interleaved: a pickle well over 1 MiB (its globals are memoised, so
      // about 90 bytes per tensor), and entries through the buffer.
      const small: Record<string, HostTensor> = {};
      for (let i = 0; i < 14000; i++) small[`layer_with_a_long_name_${i}.weight`] = tensor(1 + (i % 37), i * 64);
      state.small = small;
      await new Fabric().save(path, state);

      const source = await new NodeFileIO().openRead(path);
      try {
        const archive = await readZip(source);
        expect(archive.get("archive/data.pkl")!.size).toBeGreaterThan(MiB);
        for (const entry of archive.entries) await verifyEntry(archive, entry);
      } finally {
        await source.close();
      }

      const back = await new Fabric().load(path);
      for (const [i, n] of big.entries()) {
        const values = new Float32Array((await (back[`big${i}`] as StoredTensor).bytes()).slice().buffer);
        expect(values.length).toBe(n);
        expect([values[0], values[n >> 1], values[n - 1]]).toEqual([(i + 1) * 1e6, (i + 1) * 1e6 + (n >> 1), (i + 1) * 1e6 + n - 1]);
      }
      const smallBack = back.small as Record<string, StoredTensor>;
      for (const i of [0, 1, 3499, 6999, 13999]) {
        const values = new Float32Array((await smallBack[`layer_with_a_long_name_${i}.weight`]!.bytes()).slice().buffer);
        expect(Array.from(values)).toEqual(Array.from({ length: 1 + (i % 37) }, (_, k) => i * 64 + k));
      }

      if (skipPython) return;
      const out = runPython("import sys, zipfile, torch\nprint(zipfile.ZipFile(sys.argv[1]).testzip())\nd = torch.load(sys.argv[1])\nprint(len(d['small']), int(d['big2'][-1]))", [path]).trim();
      expect(out).toBe(`None\n14000 ${3e6 + big[2]! - 1}`);
    } finally {
      scratch.remove();
    }
  });
});
