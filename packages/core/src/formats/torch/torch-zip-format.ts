import { torchDTypeName, torchStorageClass, type DType } from "../../dtype.js";
import { numel, isTensorSource, type TensorSource } from "../../tensor/tensor-source.js";
import { asOrderedDict, asTuple, PyGlobal } from "../../tree/python-values.js";
import type { Format, FormatProbe, FormatReadContext, FormatWriteContext } from "../format.js";
import { pickle, type ReduceSpec } from "../pickle/pickler.js";
import { ZipWriter } from "../zip/writer.js";
import { readTorchZip } from "./read-torch-zip.js";
import { contiguousStrides } from "./strided-tensor.js";
import { writeAtomically } from "../../io/write-atomically.js";

const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04];
/** The top folder Lightning's files use (torch.save into a file object). */
const PREFIX = "archive";

/** A storage the writer emits: one `data/<key>` record per distinct tensor. */
class StorageOut {
  constructor(
    readonly key: string,
    readonly tensor: TensorSource,
  ) {}
}

/**
 * The file `torch.save` writes (torch ≥ 1.6): a stored zip of `data.pkl` and one record per
 * storage. Ours load with `torch.load` (and `weights_only=True`), Lightning's load with ours.
 */
export const torchZipFormat: Format = {
  name: "torch",
  extensions: [".ckpt", ".pt", ".pth", ".bin"],

  detect(probe: FormatProbe): boolean {
    return probe.info.kind === "file" && !!probe.head && ZIP_MAGIC.every((b, i) => probe.head![i] === b);
  },

  async read(ctx: FormatReadContext): Promise<unknown> {
    return readTorchZip(await ctx.open(), { where: ctx.path, safe: ctx.safe, verify: ctx.verify });
  },

  async write(tree: unknown, ctx: FormatWriteContext): Promise<void> {
    // Open first: an async save's caller resumes at this first real wait, so the pickling below
    // runs in the background instead of while the caller is blocked.
    await writeAtomically(ctx.io, ctx.path, async (out) => {
      const storages: StorageOut[] = [];
      const byTensor = new Map<TensorSource, StorageOut>();
      const pkl = pickle(tree, {
        where: ctx.path,
        persistentId: (v) => {
          if (!(v instanceof StorageOut)) return undefined;
          const d = v.tensor.dtype;
          const cls = torchStorageClass(d);
          // Typed storages count elements; dtypes without one (uint16, float8...) go untyped, in bytes.
          return asTuple(["storage", new PyGlobal("torch", cls ?? "UntypedStorage"), v.key, "cpu", cls ? numel(v.tensor.shape) : v.tensor.byteLength]);
        },
        reduce: (v): ReduceSpec | undefined => {
          if (!isTensorSource(v)) return undefined;
          let s = byTensor.get(v);
          if (!s) {
            s = new StorageOut(String(storages.length), v);
            storages.push(s);
            byTensor.set(v, s);
          }
          const args: unknown[] = [s, 0, asTuple([...v.shape]), asTuple(contiguousStrides(v.shape)), false, asOrderedDict({})];
          if (torchStorageClass(v.dtype)) return { module: "torch._utils", name: "_rebuild_tensor_v2", args };
          return { module: "torch._utils", name: "_rebuild_tensor_v3", args: [...args, torchDType(v.dtype)] };
        },
      });
      const zip = new ZipWriter(out);
      const text = (s: string) => new TextEncoder().encode(s);
      await zip.addEntry(`${PREFIX}/data.pkl`, pkl, pkl.byteLength);
      await zip.addEntry(`${PREFIX}/.format_version`, text("1"), 1);
      await zip.addEntry(`${PREFIX}/.storage_alignment`, text("64"), 2);
      await zip.addEntry(`${PREFIX}/byteorder`, text("little"), 6);
      for (const s of storages) await zip.addEntry(`${PREFIX}/data/${s.key}`, s.tensor.chunks(ctx.chunkBytes), s.tensor.byteLength);
      await zip.addEntry(`${PREFIX}/version`, text("3\n"), 2);
      const id = serializationId();
      await zip.addEntry(`${PREFIX}/.data/serialization_id`, text(id), id.length);
      await zip.finish();
    });
  },
};

function torchDType(d: DType): PyGlobal {
  return new PyGlobal("torch", torchDTypeName(d));
}

function serializationId(): string {
  // torch writes a random 40-digit decimal id; any unique string serves.
  let s = "";
  for (let i = 0; i < 40; i++) s += Math.floor(Math.random() * 10);
  return s;
}
