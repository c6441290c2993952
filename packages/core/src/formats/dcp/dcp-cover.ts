import { numel } from "../../tensor/tensor-source.js";
import type { DcpChunk } from "./dcp-metadata.js";

/** Above this many chunks per tensor the pairwise overlap check is skipped (volumes still must add up). */
const MAX_PAIRWISE = 2048;

/**
 * Chunks must lie inside the tensor and cover every element exactly once: checked when a
 * checkpoint's metadata is read, and before one is written. `corrupt` makes the error for a reason.
 */
export function checkDcpCover(key: string, size: readonly number[], chunks: readonly DcpChunk[], corrupt: (why: string) => Error): void {
  let volume = 0;
  for (const c of chunks) {
    if (c.offsets.length !== size.length || c.sizes.length !== size.length) {
      throw corrupt(`a chunk of "${key}" has ${c.offsets.length} offsets and ${c.sizes.length} sizes for a tensor of ${size.length} dimensions`);
    }
    size.forEach((dim, d) => {
      if (c.offsets[d]! + c.sizes[d]! > dim) throw corrupt(`a chunk of "${key}" at offsets (${c.offsets.join(", ")}) sizes (${c.sizes.join(", ")}) reaches past its shape (${size.join(", ")})`);
    });
    volume += numel(c.sizes);
  }
  if (volume !== numel(size)) throw corrupt(`the chunks of "${key}" hold ${volume} elements but its shape (${size.join(", ")}) has ${numel(size)}`);
  if (chunks.length > MAX_PAIRWISE) return;
  for (let i = 0; i < chunks.length; i++) {
    for (let j = i + 1; j < chunks.length; j++) {
      const a = chunks[i]!;
      const b = chunks[j]!;
      const overlap = size.every((_, d) => a.offsets[d]! < b.offsets[d]! + b.sizes[d]! && b.offsets[d]! < a.offsets[d]! + a.sizes[d]!);
      if (overlap && numel(a.sizes) > 0 && numel(b.sizes) > 0) throw corrupt(`two chunks of "${key}" overlap (at offsets (${a.offsets.join(", ")}) and (${b.offsets.join(", ")}))`);
    }
  }
}
