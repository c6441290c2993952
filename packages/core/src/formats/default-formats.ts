import type { Format } from "./format.js";
import { safetensorsFormat } from "./safetensors/safetensors-format.js";
import { safetensorsIndexFormat } from "./safetensors-index/safetensors-index-format.js";
import { tfjsManifestFormat } from "./tfjs/tfjs-manifest-format.js";
import { torchZipFormat } from "./torch/torch-zip-format.js";

/** The formats a Fabric uses unless told otherwise; the first is the default for writing. */
export function defaultFormats(): Format[] {
  return [torchZipFormat, safetensorsFormat, safetensorsIndexFormat, tfjsManifestFormat];
}
