import { PyGlobal } from "../../tree/python-values.js";
import type { GlobalLookup } from "../globals-chain.js";
import { torchGlobals } from "../torch/torch-globals.js";

/**
 * The classes a DCP `.metadata` pickle names. They are dataclasses and enums holding plain data,
 * so they are allowed (also under `safe: "strict"`) but kept inert: the pickle machine builds a
 * `PyObject` with their state, and `readDcpMetadata` validates that into the typed model.
 */
const INERT = new Map<string, readonly string[]>(Object.entries({
  "torch.distributed.checkpoint.metadata": [
    "Metadata",
    "TensorStorageMetadata",
    "BytesStorageMetadata",
    "ChunkStorageMetadata",
    "TensorProperties",
    "MetadataIndex",
    "StorageMeta",
    "_MEM_FORMAT_ENCODING",
  ],
  "torch.distributed.checkpoint.filesystem": ["_StorageInfo"],
  // Megatron-Core's subclass of Metadata keeps the writers' plans too.
  "torch.distributed.checkpoint.planner": ["SavePlan", "WriteItem", "WriteItemType", "TensorWriteData"],
  "megatron.core.dist_checkpointing.strategies.torch": ["MCoreMetadata", "MCoreSavePlan"],
  "torch.serialization": ["_get_layout"],
  pathlib: ["PosixPath", "PurePosixPath", "WindowsPath", "PureWindowsPath", "Path"],
}));

/** The allow-list for `.metadata`: the DCP classes above plus torch's (`torch.Size`, dtypes). */
export function dcpGlobals(where: string): GlobalLookup {
  const torch = torchGlobals(where);
  return (module, name) => {
    if (INERT.get(module)?.includes(name)) return { value: new PyGlobal(module, name) };
    return torch(module, name);
  };
}
