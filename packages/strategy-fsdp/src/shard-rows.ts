import { isStoredTensor, LazyTensor, numel, StrictLoadError, type TensorSource } from "@savepoint/core";

/** The rows `[start, start + rows)` of dimension 0 one rank holds. */
export interface RowRange {
  readonly start: number;
  readonly rows: number;
}

/**
 * FSDP2's split of dimension 0 (`torch.chunk` padded with empty chunks): every rank but the last
 * ones holds `ceil(n / world)` rows, so 3 rows on 2 ranks are 2 + 1, and on 4 ranks 1 + 1 + 1 + 0.
 */
export function rowRange(rows: number, rank: number, worldSize: number): RowRange {
  const per = Math.ceil(rows / worldSize);
  const start = Math.min(rank * per, rows);
  return { start, rows: Math.min(per, rows - start) };
}

/**
 * Rows `[start, start + rows)` of a saved tensor as a tensor of their own. Rows are contiguous in
 * row-major order, so this is one byte range of the saved tensor, read only when touched: a DCP
 * tensor reads only the chunks that overlap it, a torch record only that range.
 */
export function rowSlice(source: TensorSource, range: RowRange, key: string): TensorSource {
  const { start, rows } = range;
  const shape = [rows, ...source.shape.slice(1)];
  const rowBytes = source.shape[0] === 0 ? 0 : source.byteLength / source.shape[0]!;
  if (start === 0 && rows === source.shape[0]) return source;
  if (isStoredTensor(source)) {
    const base = start * rowBytes;
    return new LazyTensor(source.dtype, shape, (offset, length, into) => source.readRange(base + offset, length, into), `${key} rows [${start}, ${start + rows})`);
  }
  // A stream (a key map's own tensor) has no ranged reads: keep the rows as it passes.
  return new LazyTensor(source.dtype, shape, async (offset, length, into) => {
    const out = into ?? new Uint8Array(length);
    const lo = start * rowBytes + offset;
    const hi = lo + length;
    let at = 0;
    for await (const chunk of source.chunks()) {
      const a = Math.max(lo, at);
      const b = Math.min(hi, at + chunk.byteLength);
      if (a < b) out.set(chunk.subarray(a - at, b - at), a - lo);
      at += chunk.byteLength;
      if (at >= hi) break;
    }
    return out;
  }, `${key} rows [${start}, ${start + rows})`);
}

/** Loading a checkpoint tensor into a parameter of another global shape is refused, strict or not. */
export function checkGlobalShape(saved: TensorSource, shape: readonly number[], key: string): void {
  if (saved.shape.length !== shape.length || saved.shape.some((d, i) => d !== shape[i])) {
    throw new StrictLoadError(
      `size mismatch for ${key}: the checkpoint has shape [${saved.shape.join(", ")}], the model has [${shape.join(", ")}]. Load a checkpoint of the same architecture.`,
      { subject: key },
    );
  }
}

/** Number of elements in the rows of `range` of a tensor of `shape`. */
export function rangeElements(shape: readonly number[], range: RowRange): number {
  return shape.length === 0 ? 1 : range.rows * numel(shape.slice(1));
}
