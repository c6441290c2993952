import { UnsupportedFormatError } from "../../errors.js";
import type { TensorSource } from "../../tensor/tensor-source.js";
import type { Format, FormatProbe, FormatReadContext, FormatWriteContext } from "../format.js";
import { readChecksums } from "./checksums.js";
import { readSafetensorsHeader } from "./header.js";
import { lazyTensors } from "./reader.js";
import { flattenTree, TREE_METADATA_KEY, unflattenTree } from "./tree-metadata.js";
import { writeSafetensors } from "./writer.js";
import { writeAtomically } from "../../io/write-atomically.js";

/**
 * safetensors files. A nested state is stored as tensors named by their dotted path, plus its
 * non-tensor values as JSON under `__metadata__["savepoint.tree"]`; a file without that key (any
 * Hugging Face file) reads as a flat object of tensor name → tensor. Files written here carry
 * CRC-32s of the header and of every tensor in `__metadata__`, checked on load unless
 * `verify: false`; files without them load unchecked.
 */
export const safetensorsFormat: Format = {
  name: "safetensors",
  extensions: [".safetensors"],

  detect(probe: FormatProbe): boolean {
    if (probe.info.kind !== "file" || !probe.head || probe.head.byteLength < 9) return false;
    // 8-byte little-endian header length, then JSON starting with "{".
    const len = new DataView(probe.head.buffer, probe.head.byteOffset, 8).getBigUint64(0, true);
    return probe.head[8] === 0x7b && len > 1n && len <= BigInt(probe.info.size - 8);
  },

  async read(ctx: FormatReadContext): Promise<unknown> {
    const source = await ctx.open();
    const header = await readSafetensorsHeader(source);
    const crcs = ctx.verify ? readChecksums(header, ctx.path) : undefined;
    const tensors = lazyTensors(source, header, ctx.path, crcs && { crcs, file: ctx.path });
    const tree = header.metadata?.[TREE_METADATA_KEY];
    if (tree === undefined) return Object.fromEntries(tensors);
    let skeleton: unknown;
    try {
      skeleton = JSON.parse(tree);
    } catch {
      throw new UnsupportedFormatError(`${ctx.path}: __metadata__["${TREE_METADATA_KEY}"] is not valid JSON.`, { subject: ctx.path });
    }
    return unflattenTree(skeleton, tensors as Map<string, TensorSource>, ctx.path);
  },

  async write(tree: unknown, ctx: FormatWriteContext): Promise<void> {
    const { tensors, skeleton } = flattenTree(tree);
    await writeAtomically(ctx.io, ctx.path, (out) => writeSafetensors(out, tensors, { format: "pt", [TREE_METADATA_KEY]: JSON.stringify(skeleton) }, { checksums: true, chunkBytes: ctx.chunkBytes }));
  },
};
