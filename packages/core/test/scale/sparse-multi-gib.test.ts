// A 4.5 GiB tensor that holds no memory, saved through Fabric to local disk as a torch file (zip64)
// and as safetensors, read back by savepoint and by real PyTorch / NumPy, while savepoint allocates
// no buffer over 1 GiB on the way. One multi-GiB file is on disk at a time, removed after its test.
import { freemem } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Fabric, LazyTensor, NodeFileIO } from "../../src/index.js";
import { readSafetensorsHeader } from "../../src/formats/safetensors/header.js";
import { readZip } from "../../src/formats/zip/reader.js";
import { runPython, skipWithoutTorch } from "../helpers/python.js";
import { expectedTail, GiB, MiB, scratchDir, sparseTensor, TAIL_FLOATS, trackBigAllocations } from "./helpers.js";

const BYTES = 4.5 * GiB;
const skipPython = skipWithoutTorch();
const TAIL_TEXT = `[${TAIL_FLOATS - 2}.0, ${TAIL_FLOATS - 1}.0, ${TAIL_FLOATS}.0]`;

/** Reads the whole tensor through `chunks()` (its CRC checked on the way) and returns its last bytes. */
async function streamAll(t: LazyTensor): Promise<{ bytes: number; tail: Uint8Array }> {
  let bytes = 0;
  let last: Uint8Array = new Uint8Array(0);
  for await (const chunk of t.chunks(64 * MiB)) {
    bytes += chunk.byteLength;
    last = chunk;
  }
  return { bytes, tail: last.subarray(last.byteLength - TAIL_FLOATS * 4) };
}

/** Runs `body` with the big-allocation tracker installed, then expects it saw nothing. */
async function withoutBigBuffers(body: () => Promise<void>): Promise<void> {
  const tracker = trackBigAllocations(GiB);
  try {
    await body();
  } finally {
    tracker.stop();
  }
  expect(tracker.big, tracker.big.join("\n\n")).toEqual([]);
}

describe(`a ${BYTES / GiB} GiB tensor streamed to disk and back`, () => {
  it("torch file: zip64 records, every byte and the CRC read back, no savepoint buffer over 1 GiB, torch.load reads it", async () => {
    const scratch = scratchDir("sparse-pt");
    try {
      const path = join(scratch.dir, "big.pt");
      await withoutBigBuffers(async () => {
        await new Fabric().save(path, { big: sparseTensor(BYTES), step: 7 });

        // Our zip reader: the record's size needs zip64, and so do the end records.
        const source = await new NodeFileIO().openRead(path);
        try {
          const entry = (await readZip(source)).get("archive/data/0")!;
          expect(entry.size).toBe(BYTES);
          expect(entry.dataOffset + entry.size).toBeLessThan(source.size);
          // zip64 end record (56 bytes), its locator (20), then the classic EOCD (22) whose
          // central-directory offset is the 0xFFFFFFFF marker.
          const end = await source.read(source.size - 98, 98);
          const v = new DataView(end.buffer, end.byteOffset, end.byteLength);
          expect(v.getUint32(0, true)).toBe(0x06064b50);
          expect(v.getUint32(56, true)).toBe(0x07064b50);
          expect(v.getUint32(76, true)).toBe(0x06054b50);
          expect(v.getUint32(76 + 16, true)).toBe(0xffffffff);
        } finally {
          await source.close();
        }

        // Every byte back through chunks(), the record's CRC checked at its end, the tail in place.
        const ckpt = await new Fabric().load(path);
        expect(ckpt.step).toBe(7);
        const big = ckpt.big as LazyTensor;
        expect(big.shape).toEqual([BYTES / 4]);
        const read = await streamAll(big);
        expect(read.bytes).toBe(BYTES);
        expect(read.tail).toEqual(expectedTail());
        // A fresh load jumping straight to the end verifies the whole record first, then reads.
        const again = (await new Fabric().load(path)).big as LazyTensor;
        expect(await again.readRange(BYTES - 12, 12)).toEqual(expectedTail().subarray(TAIL_FLOATS * 4 - 12));
      });

      if (skipPython) return;
      if (freemem() <= 12 * GiB) {
        console.warn(`skipping torch.load of the ${BYTES / GiB} GiB file: it needs the memory, and only ${(freemem() / GiB).toFixed(1)} GiB is free (more than 12 GiB wanted)`);
        return;
      }
      const out = runPython("import sys, torch\nd = torch.load(sys.argv[1], map_location='cpu')\nt = d['big']\nprint(t.dtype, list(t.shape), d['step'], t[-3:].tolist())", [path]).trim();
      expect(out).toBe(`torch.float32 [${BYTES / 4}] 7 ${TAIL_TEXT}`);
    } finally {
      scratch.remove();
    }
  });

  it("safetensors file: offsets past 4 GiB, every byte read back, no savepoint buffer over 1 GiB, NumPy reads the end", async () => {
    const scratch = scratchDir("sparse-st");
    try {
      const path = join(scratch.dir, "big.safetensors");
      await withoutBigBuffers(async () => {
        await new Fabric().save(path, { big: sparseTensor(BYTES), step: 7 });
        const source = await new NodeFileIO().openRead(path);
        try {
          const entry = (await readSafetensorsHeader(source)).entries.find((e) => e.name === "big")!;
          expect(entry.end - entry.begin).toBe(BYTES);
          expect(entry.end).toBe(source.size);
        } finally {
          await source.close();
        }
        const big = (await new Fabric().load(path)).big as LazyTensor;
        expect(big.shape).toEqual([BYTES / 4]);
        const read = await streamAll(big);
        expect(read.bytes).toBe(BYTES);
        expect(read.tail).toEqual(expectedTail());
      });

      if (skipPython) return;
      // An independent reader: the header parsed by hand, the end of the data through numpy.memmap.
      const out = runPython(
        "import sys, json, struct, numpy as np\nf = open(sys.argv[1], 'rb'); n = struct.unpack('<Q', f.read(8))[0]; h = json.loads(f.read(n))\ne = h['big']\na = np.memmap(sys.argv[1], dtype='<f4', mode='r', offset=8 + n + e['data_offsets'][0], shape=tuple(e['shape']))\nprint(e['dtype'], e['shape'], a[-3:].tolist())",
        [path],
      ).trim();
      expect(out).toBe(`F32 [${BYTES / 4}] ${TAIL_TEXT}`);
    } finally {
      scratch.remove();
    }
  });
});
