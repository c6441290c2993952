import type { Format } from "./format.js";
import { safetensorsFormat } from "./safetensors/safetensors-format.js";
import { safetensorsIndexFormat } from "./safetensors-index/safetensors-index-format.js";
import { tfjsManifestFormat } from "./tfjs/tfjs-manifest-format.js";
import { torchZipFormat } from "./torch/torch-zip-format.js";
import { torchLegacyFormat } from "./torch-legacy/torch-legacy-format.js";
import { dcpFormat } from "./dcp/dcp-format.js";

/** The formats a Fabric uses unless told otherwise; the first is the default for writing. */
export function defaultFormats(): Format[] {
  return [torchZipFormat, torchLegacyFormat, safetensorsFormat, safetensorsIndexFormat, tfjsManifestFormat, dcpFormat];
}
