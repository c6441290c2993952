import { asTuple, HostTensor, MemoryIO, PyGlobal, PyObject } from "../../src/index.js";
import { torchZipFormat } from "../../src/formats/torch/torch-zip-format.js";
import { pickle } from "../../src/formats/pickle/pickler.js";
import { contiguousStrides } from "../../src/formats/torch/strided-tensor.js";

const MD = "torch.distributed.checkpoint.metadata";

export interface ChunkSpec {
  offsets: number[];
  sizes: number[];
  /** Which file the chunk goes to (default `__0_0.distcp`). */
  file?: string;
}

export interface TensorSpec {
  tensor: HostTensor;
  chunks: ChunkSpec[];
}

export interface DcpSpec {
  tensors: Record<string, TensorSpec>;
  /** Non-tensor values, stored as torch.save blobs (or raw bytes when Uint8Array). */
  bytes?: Record<string, unknown>;
  plannerData?: Record<string, (string | number)[]>;
  /** Store chunks as raw bytes instead of small torch zips (newer DCP writers). */
  raw?: boolean;
  /** Lightning's meta.pt content. */
  meta?: Record<string, unknown>;
  /** Rewrites each storage location before the metadata is pickled (for hostile variants). */
  location?: (key: string, loc: { file: string; offset: number; length: number }) => { file: string; offset: number; length: number };
}

/** The row-major bytes of the box `offsets`/`sizes` of a tensor. */
export function boxBytes(t: HostTensor, offsets: readonly number[], sizes: readonly number[]): Uint8Array {
  const item = t.byteLength / Math.max(1, t.size);
  const strides = contiguousStrides(t.shape);
  const n = sizes.reduce((a, b) => a * b, 1);
  const out = new Uint8Array(n * item);
  const idx = new Array<number>(sizes.length).fill(0);
  for (let e = 0; e < n; e++) {
    let flat = 0;
    for (let d = 0; d < sizes.length; d++) flat += (offsets[d]! + idx[d]!) * strides[d]!;
    out.set(t.raw.subarray(flat * item, (flat + 1) * item), e * item);
    for (let d = sizes.length - 1; d >= 0; d--) {
      if (++idx[d]! < sizes[d]!) break;
      idx[d] = 0;
    }
  }
  return out;
}

async function torchSave(value: unknown): Promise<Uint8Array> {
  const io = new MemoryIO();
  await torchZipFormat.write!(value, { io, path: "x.pt", chunkBytes: 1 << 20 });
  return io.files.get("x.pt")!;
}

const obj = (module: string, name: string, state: unknown) => new PyObject(module, name, [], state);
const size = (dims: number[]) => new PyObject("torch", "Size", [asTuple([...dims])]);

/** Writes a DCP checkpoint folder `dir` into `io` the way torch's FileSystemWriter lays it out. */
export async function buildDcp(io: MemoryIO, dir: string, spec: DcpSpec): Promise<void> {
  const files = new Map<string, Uint8Array[]>();
  const put = (file: string, bytes: Uint8Array) => {
    const parts = files.get(file) ?? [];
    const offset = parts.reduce((n, p) => n + p.length, 0);
    parts.push(bytes);
    files.set(file, parts);
    return { file, offset, length: bytes.length };
  };
  const sdm: Record<string, unknown> = {};
  const storage = new Map<unknown, unknown>();
  const info = (key: string, loc: { file: string; offset: number; length: number }) => {
    const l = spec.location ? spec.location(key, loc) : loc;
    return obj("torch.distributed.checkpoint.filesystem", "_StorageInfo", { relative_path: l.file, offset: l.offset, length: l.length, transform_descriptors: null });
  };
  for (const [key, { tensor, chunks }] of Object.entries(spec.tensors)) {
    const chunkMeta = [];
    for (const c of chunks) {
      const data = boxBytes(tensor, c.offsets, c.sizes);
      const blob = spec.raw ? data : await torchSave(new HostTensor(tensor.dtype, c.sizes, data));
      const loc = put(c.file ?? "__0_0.distcp", blob);
      storage.set(obj(MD, "MetadataIndex", { fqn: key, offset: size(c.offsets), index: chunkMeta.length }), info(key, loc));
      chunkMeta.push(obj(MD, "ChunkStorageMetadata", { offsets: size(c.offsets), sizes: size(c.sizes) }));
    }
    const props = obj(MD, "TensorProperties", asTuple([new PyGlobal("torch", tensor.dtype), null, false, null, false]));
    sdm[key] = obj(MD, "TensorStorageMetadata", { properties: props, size: size([...tensor.shape]), chunks: chunkMeta });
  }
  for (const [key, value] of Object.entries(spec.bytes ?? {})) {
    const loc = put("__1_0.distcp", value instanceof Uint8Array ? value : await torchSave(value));
    storage.set(obj(MD, "MetadataIndex", { fqn: key, index: null }), info(key, loc));
    sdm[key] = obj(MD, "BytesStorageMetadata", {});
  }
  const metadata = obj(MD, "Metadata", {
    state_dict_metadata: sdm,
    planner_data: spec.plannerData ? Object.fromEntries(Object.entries(spec.plannerData).map(([k, p]) => [k, asTuple([...p])])) : null,
    storage_data: storage,
    storage_meta: obj(MD, "StorageMeta", { checkpoint_id: new PyObject("pathlib", "PosixPath", ["/", "tmp", "ckpt"]), save_id: "x", load_id: null }),
    version: "1.0.0",
  });
  for (const [file, parts] of files) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    io.files.set(`${dir}/${file}`, out);
  }
  if (spec.meta) io.files.set(`${dir}/meta.pt`, await torchSave(spec.meta));
  io.files.set(`${dir}/.metadata`, pickle(metadata));
}
