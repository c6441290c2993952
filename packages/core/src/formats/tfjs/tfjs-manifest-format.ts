import { CorruptCheckpointError } from "../../errors.js";
import { basename, joinPath } from "../../io/paths.js";
import type { LazyTensor } from "../../tensor/stored-tensor.js";
import { setOwn } from "../../tree/plain.js";
import type { Format, FormatProbe, FormatReadContext } from "../format.js";
import { ConcatenatedFiles } from "./concatenated-files.js";
import { MAX_MANIFEST_BYTES, parseTfjsManifest, type TfjsGroup } from "./manifest.js";
import { siblingFiles } from "./sibling-files.js";
import { weightTensor } from "./weight-tensor.js";

const MODEL_JSON = "model.json";

/** Top-level keys tfjs writers put first; a `.json` not named model.json must show one early. */
const TFJS_KEYS = ["weightsManifest", "modelTopology", "format", "generatedBy", "convertedBy"];

/**
 * TensorFlow.js models (`model.json` + weight shards), read only: the checkpoint is a flat object
 * of weight name → tensor in manifest order, for `loadRaw`. The topology is not returned.
 * Accepts the model.json file or the folder that holds it.
 */
export const tfjsManifestFormat: Format = {
  name: "tfjs",
  extensions: [".json"],

  detect(probe: FormatProbe): boolean {
    if (probe.info.kind === "directory") return probe.entries?.includes(MODEL_JSON) ?? false;
    const name = basename(probe.path).toLowerCase();
    // Sharded safetensors indexes are JSON too; they have their own format.
    if (!name.endsWith(".json") || name.endsWith(".safetensors.index.json") || !probe.head) return false;
    const head = new TextDecoder().decode(probe.head);
    if (!head.trimStart().startsWith("{")) return false;
    return name === MODEL_JSON || TFJS_KEYS.some((k) => head.includes(`"${k}"`));
  },

  async read(ctx: FormatReadContext): Promise<unknown> {
    const inFolder = ctx.info.kind === "directory";
    const file = inFolder ? joinPath(ctx.path, MODEL_JSON) : ctx.path;
    const source = await (inFolder ? ctx.open(MODEL_JSON) : ctx.open());
    if (source.size > MAX_MANIFEST_BYTES) {
      throw new CorruptCheckpointError(`${file} is ${source.size} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit for a TensorFlow.js model.json (weights belong in the .bin shards); it is not a model.json savepoint reads.`, { subject: file });
    }
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(await source.read(0, source.size));
    } catch (err) {
      if (!(err instanceof TypeError)) throw err;
      throw new CorruptCheckpointError(`${file} is not valid UTF-8 text, so it is not a TensorFlow.js model.json. Re-save or re-download the model.`, { subject: file });
    } finally {
      // No tensor reads model.json again.
      await source.close();
    }
    const groups = parseTfjsManifest(text, file);

    const files = siblingFiles(ctx);
    // Open and size-check every group before returning, so a bad set fails the load, not a later read.
    const spans = await Promise.all(groups.map((g) => openGroup(g, files, file)));
    const out: Record<string, LazyTensor> = {};
    groups.forEach((g, i) => {
      for (const w of g.weights) setOwn(out, w.name, weightTensor(w, spans[i]!, file));
    });
    return out;
  },
};

async function openGroup(group: TfjsGroup, files: ReturnType<typeof siblingFiles>, file: string): Promise<ConcatenatedFiles> {
  const where = `${file} (weightsManifest[${group.index}])`;
  const sources = await Promise.all(group.paths.map((p) => files.open(p, where)));
  const span = new ConcatenatedFiles(sources);
  if (span.size !== group.byteLength) {
    const sizes = sources.map((s) => `${s.name}: ${s.size}`).join(", ");
    throw new CorruptCheckpointError(
      `${where}: its ${group.weights.length} weights need ${group.byteLength} bytes but its shard files hold ${span.size} (${sizes || "no files"}). The shards are truncated, missing or from another export; re-export or re-download the model.`,
      { subject: file },
    );
  }
  return span;
}
