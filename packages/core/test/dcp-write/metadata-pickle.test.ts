import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { torchDTypeName, type DType } from "../../src/dtype.js";
import type { DcpItem, DcpMetadata } from "../../src/formats/dcp/dcp-metadata.js";
import { encodeDcpMetadata } from "../../src/formats/dcp/write-dcp-metadata.js";
import { markNewObj } from "../../src/formats/pickle/newobj-mark.js";
import { pickle } from "../../src/formats/pickle/pickler.js";
import { unpickle } from "../../src/formats/pickle/unpickler.js";
import { asTuple, InvalidArgumentError, PyGlobal, PyObject } from "../../src/index.js";

/**
 * The metadata as a tree of Python objects, written by the generic pickler: how `.metadata` was
 * encoded before it was written opcode by opcode. The two must read back as the same objects.
 */
function referencePickle(md: DcpMetadata): Uint8Array {
  const MD = "torch.distributed.checkpoint.metadata";
  const dataclass = (name: string, state?: unknown, module = MD) => markNewObj(new PyObject(module, name, [], state));
  const torchSize = (dims: readonly number[]) => new PyObject("torch", "Size", [asTuple([...dims])]);
  const storageInfo = (s: { file: string; offset: number; length: number }) => dataclass("_StorageInfo", { relative_path: s.file, offset: s.offset, length: s.length }, "torch.distributed.checkpoint.filesystem");
  const layout = new PyObject("torch.serialization", "_get_layout", ["torch.strided"]);
  const contiguous = new PyObject(MD, "_MEM_FORMAT_ENCODING", [0]);
  const stateDictMetadata: Record<string, unknown> = {};
  const storage: [PyObject, PyObject, number, string, number][] = [];
  const rank = (p: string) => Number(/^__(\d+)_/.exec(p)?.[1] ?? Number.MAX_SAFE_INTEGER);
  for (const item of md.items.values()) {
    if (item.kind === "bytes") {
      stateDictMetadata[item.key] = dataclass("BytesStorageMetadata");
      storage.push([dataclass("MetadataIndex", { fqn: item.key, index: null }), storageInfo(item.storage), rank(item.storage.file), item.storage.file, item.storage.offset]);
      continue;
    }
    const properties = dataclass("TensorProperties", asTuple([new PyGlobal("torch", torchDTypeName(item.dtype)), layout, item.requiresGrad, contiguous, false]));
    const chunks = item.chunks.map((c, index) => {
      storage.push([dataclass("MetadataIndex", { fqn: item.key, offset: torchSize(c.offsets), index }), storageInfo(c.storage), rank(c.storage.file), c.storage.file, c.storage.offset]);
      return dataclass("ChunkStorageMetadata", { offsets: torchSize(c.offsets), sizes: torchSize(c.sizes) });
    });
    stateDictMetadata[item.key] = dataclass("TensorStorageMetadata", { properties, size: torchSize(item.size), chunks });
  }
  storage.sort((a, b) => a[2] - b[2] || (a[3] < b[3] ? -1 : a[3] > b[3] ? 1 : 0) || a[4] - b[4]);
  const plannerData: Record<string, unknown> = {};
  for (const [k, path] of md.plannerData ?? []) plannerData[k] = asTuple([...path]);
  const parts = (p: string) => p.split("/").filter((x) => x !== "" && x !== ".");
  const posixPath = (p: string) => new PyObject("pathlib", "PosixPath", p.startsWith("/") ? ["/", ...parts(p)] : parts(p).length > 0 ? parts(p) : ["."]);
  return pickle(
    dataclass("Metadata", {
      state_dict_metadata: stateDictMetadata,
      planner_data: plannerData,
      storage_data: new Map(storage.map(([k, v]) => [k, v])),
      storage_meta: dataclass("StorageMeta", { checkpoint_id: md.checkpointId === undefined ? null : posixPath(md.checkpointId), save_id: md.saveId ?? null, load_id: null, modules: [] }),
      version: md.version ?? "1.0.0",
    }),
  );
}

/** Decoded with every class left inert, so both encodings compare object by object. */
const decode = (bytes: Uint8Array) => unpickle(bytes, { where: ".metadata", safe: "placeholder" }).value;

const dtypes: DType[] = ["float32", "float16", "bfloat16", "int64", "int32", "uint8", "bool", "float64"];

/** Metadata of tensors split in row chunks over a few ranks, some values, and planner data. */
const metadataArb = fc
  .record({
    tensors: fc.array(fc.record({ rows: fc.integer({ min: 1, max: 300 }), cols: fc.array(fc.integer({ min: 1, max: 70_000 }), { maxLength: 2 }), ranks: fc.integer({ min: 1, max: 4 }), dtype: fc.constantFrom(...dtypes), grad: fc.boolean() }), { maxLength: 12 }),
    values: fc.integer({ min: 0, max: 3 }),
    bigOffset: fc.boolean(),
    checkpointId: fc.option(fc.constantFrom("/ckpt/step-1", "relative/dir", ".", "/"), { nil: undefined }),
    saveId: fc.option(fc.string(), { nil: undefined }),
  })
  .map(({ tensors, values, bigOffset, checkpointId, saveId }): DcpMetadata => {
    const items = new Map<string, DcpItem>();
    const plannerData = new Map<string, (string | number)[]>();
    const offset = [0, 0, 0, 0].map(() => (bigOffset ? 2 ** 33 : 0));
    const place = (rank: number, length: number) => {
      const at = { file: `__${rank}_0.distcp`, offset: offset[rank]!, length, transforms: [] };
      offset[rank]! += length;
      return at;
    };
    tensors.forEach((t, i) => {
      const key = `model.layer_${i}.weight`;
      const per = Math.ceil(t.rows / t.ranks);
      const chunks = [];
      for (let r = 0; r * per < t.rows; r++) chunks.push({ offsets: [r * per, ...t.cols.map(() => 0)], sizes: [Math.min(per, t.rows - r * per), ...t.cols], storage: place(r, 100 + r) });
      items.set(key, { kind: "tensor", key, dtype: t.dtype, size: [t.rows, ...t.cols], requiresGrad: t.grad, chunks: chunks.reverse() });
      plannerData.set(key, ["model", `layer_${i}.weight`]);
    });
    for (let v = 0; v < values; v++) {
      const key = `optimizer.param_groups.${v}.lr`;
      items.set(key, { kind: "bytes", key, storage: place(0, 40) });
      plannerData.set(key, ["optimizer", "param_groups", v, "lr"]);
    }
    return { items, plannerData, checkpointId, saveId, version: "1.0.0" };
  });

describe(".metadata written opcode by opcode", () => {
  it("reads back as the same objects the generic pickler writes for the same metadata", () => {
    fc.assert(
      fc.property(metadataArb, (md) => {
        expect(decode(encodeDcpMetadata(md))).toEqual(decode(referencePickle(md)));
      }),
      { numRuns: 150 },
    );
  });

  it("memoises classes, the layout and the memory format: a thousand tensors share one copy of each name", () => {
    const items = new Map<string, DcpItem>();
    for (let i = 0; i < 1000; i++) {
      const key = `w${i}`;
      items.set(key, { kind: "tensor", key, dtype: "float32", size: [2], requiresGrad: false, chunks: [{ offsets: [0], sizes: [2], storage: { file: "__0_0.distcp", offset: i * 8, length: 8, transforms: [] } }] });
    }
    const bytes = encodeDcpMetadata({ items });
    const text = new TextDecoder("latin1").decode(bytes);
    for (const name of ["ChunkStorageMetadata", "TensorProperties", "_get_layout", "_MEM_FORMAT_ENCODING", "\nSize\n"]) expect(text.split(name).length - 1).toBe(1);
    const md = decode(bytes) as PyObject;
    const state = (md.state as Record<string, PyObject>).state_dict_metadata as unknown as Record<string, PyObject>;
    const props = (k: string) => ((state[k]!.state as Record<string, PyObject>).properties!.state as unknown[]);
    // The same layout object in every tensor's properties, as Python's pickle shares it.
    expect(props("w0")[1]).toBe(props("w999")[1]);
  });

  it("refuses a key that is not valid UTF-8 (a lone surrogate), naming the file", () => {
    const key = "bad\ud800key";
    const md: DcpMetadata = { items: new Map([[key, { kind: "bytes", key, storage: { file: "__0_0.distcp", offset: 0, length: 1, transforms: [] } }]]) };
    expect(() => encodeDcpMetadata(md, "ckpt/.metadata")).toThrow(InvalidArgumentError);
    expect(() => encodeDcpMetadata(md, "ckpt/.metadata")).toThrow(/ckpt\/\.metadata.*lone UTF-16 surrogate/);
  });
});
