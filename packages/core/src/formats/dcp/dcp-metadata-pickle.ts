import { torchDTypeName } from "../../dtype.js";
import { InvalidArgumentError } from "../../errors.js";
import { OpWriter } from "../pickle/op-writer.js";
import { Op } from "../pickle/opcodes.js";
import type { DcpMetadata, DcpStorageLocation } from "./dcp-metadata.js";

const MD = "torch.distributed.checkpoint.metadata";
const FS = "torch.distributed.checkpoint.filesystem";
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * The `.metadata` pickle of torch 2.x's DCP (`torch.distributed.checkpoint.metadata.Metadata`
 * with its dataclasses, protocol 2, as `FileSystemReader` loads it with `pickle.load`), written
 * opcode by opcode. The generic pickler walks any tree and tracks every object it meets; a sharded
 * save lists a few objects per chunk (thousands per checkpoint), and that walk cost rank 0 about a
 * tenth of a second at the end of every save while the other ranks waited.
 *
 * What it writes (dataclasses are `cls.__new__(cls)` then their fields, as pickle stores them):
 * `Metadata{state_dict_metadata, planner_data, storage_data, storage_meta, version}` where tensors
 * are `TensorStorageMetadata{properties, size, chunks}`, properties `TensorProperties` built from
 * the tuple `(dtype, layout, requires_grad, memory_format, pin_memory)`, sizes `torch.Size`, chunks
 * `ChunkStorageMetadata{offsets, sizes}`; other values `BytesStorageMetadata`; `storage_data` maps
 * `MetadataIndex{fqn, offset, index}` to `_StorageInfo{relative_path, offset, length}`, by rank then
 * file order. Classes, the layout and the memory format are memoised, as torch's pickle does.
 */
export function pickleDcpMetadata(md: DcpMetadata, where: string): Uint8Array {
  return new MetadataPickler(where).write(md);
}

class MetadataPickler {
  readonly #o = new OpWriter();
  #layout: number | undefined;
  #contiguous: number | undefined;

  constructor(readonly where: string) {}

  write(md: DcpMetadata): Uint8Array {
    const o = this.#o;
    const items = [...md.items.values()];
    const planner = [...(md.plannerData ?? [])];
    // storage_data: every chunk (or value) with where it is stored, by rank, then file, then offset.
    const storage: { key: string; offsets?: readonly number[]; index: number | null; at: DcpStorageLocation; rank: number }[] = [];
    for (const item of items) {
      if (item.kind === "bytes") storage.push({ key: item.key, index: null, at: item.storage, rank: rankOf(item.storage.file) });
      else item.chunks.forEach((c, index) => storage.push({ key: item.key, offsets: c.offsets, index, at: c.storage, rank: rankOf(c.storage.file) }));
    }
    storage.sort((a, b) => a.rank - b.rank || (a.at.file < b.at.file ? -1 : a.at.file > b.at.file ? 1 : 0) || a.at.offset - b.at.offset);

    this.#newObject(MD, "Metadata");
    o.op(Op.EMPTY_DICT);
    o.setItems(5, (i) => {
      if (i === 0) {
        this.#string("state_dict_metadata");
        o.op(Op.EMPTY_DICT);
        o.setItems(items.length, (k) => {
          const item = items[k]!;
          this.#string(item.key);
          if (item.kind === "bytes") {
            this.#newObject(MD, "BytesStorageMetadata");
            return;
          }
          this.#newObject(MD, "TensorStorageMetadata");
          this.#fields(3, (f) => {
            if (f === 0) {
              this.#string("properties");
              this.#newObject(MD, "TensorProperties");
              // TensorProperties pickles its fields as one tuple (its __setstate__).
              o.tuple(5, () => {
                o.global("torch", torchDTypeName(item.dtype));
                this.#memoised("layout", () => {
                  o.global("torch.serialization", "_get_layout");
                  o.tuple(1, () => this.#string("torch.strided"));
                  o.op(Op.REDUCE);
                });
                o.bool(item.requiresGrad);
                this.#memoised("contiguous", () => {
                  o.global(MD, "_MEM_FORMAT_ENCODING");
                  o.tuple(1, () => o.int(0));
                  o.op(Op.REDUCE);
                });
                o.bool(false);
              });
              o.op(Op.BUILD);
            } else if (f === 1) {
              this.#string("size");
              this.#torchSize(item.size);
            } else {
              this.#string("chunks");
              o.op(Op.EMPTY_LIST);
              const n = item.chunks.length;
              for (let c = 0; c < n; c++) {
                if (c % 1000 === 0 && n - c > 1) o.op(Op.MARK);
                const chunk = item.chunks[c]!;
                this.#newObject(MD, "ChunkStorageMetadata");
                this.#fields(2, (g) => {
                  this.#string(g === 0 ? "offsets" : "sizes");
                  this.#torchSize(g === 0 ? chunk.offsets : chunk.sizes);
                });
                if ((c + 1) % 1000 === 0 || c + 1 === n) o.op(c % 1000 === 0 ? Op.APPEND : Op.APPENDS);
              }
            }
          });
        });
      } else if (i === 1) {
        this.#string("planner_data");
        o.op(Op.EMPTY_DICT);
        o.setItems(planner.length, (k) => {
          const [key, path] = planner[k]!;
          this.#string(key);
          o.tuple(path.length, () => {
            for (const part of path) typeof part === "number" ? o.int(part) : this.#string(part);
          });
        });
      } else if (i === 2) {
        this.#string("storage_data");
        o.op(Op.EMPTY_DICT);
        o.setItems(storage.length, (k) => {
          const s = storage[k]!;
          this.#newObject(MD, "MetadataIndex");
          // MetadataIndex(fqn) of a value leaves `offset` at its class default: not in its fields.
          this.#fields(s.offsets ? 3 : 2, (f) => {
            if (f === 0) {
              this.#string("fqn");
              this.#string(s.key);
            } else if (s.offsets && f === 1) {
              this.#string("offset");
              this.#torchSize(s.offsets);
            } else {
              this.#string("index");
              s.index === null ? o.none() : o.int(s.index);
            }
          });
          this.#newObject(FS, "_StorageInfo");
          this.#fields(3, (f) => {
            if (f === 0) {
              this.#string("relative_path");
              this.#string(s.at.file);
            } else {
              this.#string(f === 1 ? "offset" : "length");
              o.int(f === 1 ? s.at.offset : s.at.length);
            }
          });
        });
      } else if (i === 3) {
        this.#string("storage_meta");
        this.#newObject(MD, "StorageMeta");
        this.#fields(4, (f) => {
          if (f === 0) {
            this.#string("checkpoint_id");
            if (md.checkpointId === undefined) o.none();
            else this.#posixPath(md.checkpointId);
          } else if (f === 1) {
            this.#string("save_id");
            if (md.saveId === undefined) o.none();
            else this.#string(md.saveId);
          } else if (f === 2) {
            this.#string("load_id");
            o.none();
          } else {
            this.#string("modules");
            o.op(Op.EMPTY_LIST);
          }
        });
      } else {
        this.#string("version");
        this.#string(md.version ?? "1.0.0");
      }
    });
    o.op(Op.BUILD);
    return o.finish();
  }

  /** `cls.__new__(cls)`: the class, no arguments, NEWOBJ (fields follow as a BUILD, if any). */
  #newObject(module: string, name: string): void {
    this.#o.global(module, name);
    this.#o.op(Op.EMPTY_TUPLE);
    this.#o.op(Op.NEWOBJ);
  }

  /** A dataclass's fields: a dict of `n` entries written by `field(i)`, then BUILD. */
  #fields(n: number, field: (i: number) => void): void {
    this.#o.op(Op.EMPTY_DICT);
    this.#o.setItems(n, field);
    this.#o.op(Op.BUILD);
  }

  /** `torch.Size(dims)`: the class called with one tuple. */
  #torchSize(dims: readonly number[]): void {
    const o = this.#o;
    o.global("torch", "Size");
    o.tuple(1, () => o.tuple(dims.length, () => dims.forEach((d) => o.int(d))));
    o.op(Op.REDUCE);
  }

  /** `pathlib.PosixPath(*parts)`, as pickle writes a path (its class and its parts). */
  #posixPath(path: string): void {
    const parts = path.split("/").filter((p) => p !== "" && p !== ".");
    const args = path.startsWith("/") ? ["/", ...parts] : parts.length > 0 ? parts : ["."];
    this.#o.global("pathlib", "PosixPath");
    this.#o.tuple(args.length, () => args.forEach((a) => this.#string(a)));
    this.#o.op(Op.REDUCE);
  }

  /** One object shared by every tensor's properties: written once, then recalled. */
  #memoised(which: "layout" | "contiguous", write: () => void): void {
    const id = which === "layout" ? this.#layout : this.#contiguous;
    if (id !== undefined) {
      this.#o.get(id);
      return;
    }
    write();
    const put = this.#o.put();
    if (which === "layout") this.#layout = put;
    else this.#contiguous = put;
  }

  /** Every string is memoised: field names repeat per chunk, and a key appears in several places. */
  #string(s: string): void {
    if (LONE_SURROGATE.test(s)) {
      throw new InvalidArgumentError(`${this.where}: the key or name ${JSON.stringify(s)} contains a lone UTF-16 surrogate, which is not valid UTF-8. Fix it (String.prototype.toWellFormed) before saving.`, { subject: this.where });
    }
    this.#o.memoString(s);
  }
}

/** The rank in a DCP file name `__<rank>_<n>.distcp` (files named otherwise sort last). */
function rankOf(file: string): number {
  return Number(/^__(\d+)_/.exec(file)?.[1] ?? Number.MAX_SAFE_INTEGER);
}
