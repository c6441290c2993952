import { dtypeFromTorchName, dtypeFromTorchStorage, itemSize, type DType } from "../../dtype.js";
import { CorruptCheckpointError } from "../../errors.js";
import { isStoredTensor } from "../../tensor/stored-tensor.js";
import { asTuple } from "../../tree/python-values.js";
import type { GlobalHandler } from "../pickle/unpickler.js";
import { viewTensor, type StorageReader } from "./strided-tensor.js";

/** A torch storage class named in a persistent id (`torch.FloatStorage`, `torch.UntypedStorage`). */
export class TorchStorageType {
  constructor(
    readonly name: string,
    /** undefined for UntypedStorage: the dtype comes from `_rebuild_tensor_v3`. */
    readonly dtype: DType | undefined,
  ) {}
}

/** A `torch.float32`-style dtype object in a pickle. */
export class TorchDType {
  constructor(readonly dtype: DType) {}
}

/** One storage a pickle refers to, resolved by the file format to a byte reader. */
export interface StorageRef {
  readonly type: TorchStorageType;
  /** Element count as recorded (bytes for untyped storages). */
  readonly numel: number;
  readonly read: StorageReader;
  /** For messages: `file:record`. */
  readonly where: string;
}

export function isStorageRef(v: unknown): v is StorageRef {
  return typeof v === "object" && v !== null && (v as StorageRef).type instanceof TorchStorageType && typeof (v as StorageRef).read === "function";
}

function rebuild(where: string, storage: unknown, offset: unknown, size: unknown, stride: unknown, dtype?: DType) {
  if (!isStorageRef(storage)) throw new CorruptCheckpointError(`${where}: a tensor is rebuilt from something that is not a storage.`, { subject: where });
  if (!Array.isArray(size) || !Array.isArray(stride) || typeof offset !== "number") {
    throw new CorruptCheckpointError(`${storage.where}: a tensor has malformed size/stride/offset.`, { subject: storage.where });
  }
  const d = dtype ?? storage.type.dtype;
  if (!d) throw new CorruptCheckpointError(`${storage.where}: an untyped storage is used without a dtype.`, { subject: storage.where });
  const elements = storage.type.dtype ? storage.numel : Math.floor(storage.numel / itemSize(d));
  return viewTensor(d, elements, offset, size as number[], stride as number[], storage.read, storage.where);
}

const STORAGE_NAMES = [
  "FloatStorage",
  "DoubleStorage",
  "HalfStorage",
  "BFloat16Storage",
  "LongStorage",
  "IntStorage",
  "ShortStorage",
  "CharStorage",
  "ByteStorage",
  "BoolStorage",
  "ComplexFloatStorage",
  "ComplexDoubleStorage",
];

/**
 * torch's share of the allow-list, the globals `torch.load(weights_only=True)` accepts: tensor and
 * parameter rebuilds, storage classes, dtypes, `torch.Size`, `torch.device`. All build data only.
 */
export function torchGlobals(where: string): (module: string, name: string) => GlobalHandler | undefined {
  return (module, name) => {
    if (module === "torch._utils") {
      switch (name) {
        case "_rebuild_tensor_v2":
        case "_rebuild_tensor":
          return { call: (a) => rebuild(where, a[0], a[1], a[2], a[3]) };
        case "_rebuild_tensor_v3":
          return { call: (a) => rebuild(where, a[0], a[1], a[2], a[3], a[6] instanceof TorchDType ? a[6].dtype : undefined) };
        case "_rebuild_parameter":
        case "_rebuild_parameter_with_state":
          return {
            call: (a) => {
              if (!isStoredTensor(a[0])) throw new CorruptCheckpointError(`${where}: a parameter wraps something that is not a tensor.`, { subject: where });
              return a[0];
            },
          };
      }
      return undefined;
    }
    if (module === "torch") {
      if (name === "Size") return { call: (a) => asTuple([...((a[0] as number[] | undefined) ?? [])]) };
      if (name === "device") return { call: (a) => (a.length > 1 ? `${String(a[0])}:${String(a[1])}` : String(a[0])) };
      if (STORAGE_NAMES.includes(name)) {
        const type = new TorchStorageType(name, dtypeFromTorchStorage(name, where));
        return { value: type };
      }
      if (name === "UntypedStorage") return { value: new TorchStorageType(name, undefined) };
      try {
        return { value: new TorchDType(dtypeFromTorchName(name, where)) };
      } catch {
        return undefined;
      }
    }
    return undefined;
  };
}
