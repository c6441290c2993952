import { CorruptCheckpointError } from "../../errors.js";
import { isStoredTensor } from "../../tensor/stored-tensor.js";
import type { GlobalLookup } from "../globals-chain.js";
import { torchGlobals } from "../torch/torch-globals.js";

/**
 * torch's allow-list as old files need it: everything `torchGlobals` knows, plus the spellings
 * torch < 1.6 pickled directly: `torch.nn.parameter.Parameter(data, requires_grad)` (before
 * `_rebuild_parameter` existed) and storage classes under `torch.cuda`. Both only wrap data.
 */
export function legacyTorchGlobals(where: string): GlobalLookup {
  const torch = torchGlobals(where);
  return (module, name) => {
    const known = torch(module, name);
    if (known) return known;
    if (module === "torch.cuda" && name.endsWith("Storage")) return torch("torch", name);
    if (module === "torch.nn.parameter" && name === "Parameter") {
      return {
        call: (args) => {
          if (!isStoredTensor(args[0])) throw new CorruptCheckpointError(`${where}: a parameter wraps something that is not a tensor.`, { subject: where });
          return args[0];
        },
      };
    }
    return undefined;
  };
}
