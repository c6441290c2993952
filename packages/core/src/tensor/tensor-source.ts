import type { DType } from "../dtype.js";

/**
 * A tensor whose bytes can be streamed: what formats write and what backends assign from.
 * Bytes are little-endian, row-major (C order), `byteLength = product(shape) * itemSize(dtype)`.
 */
export interface TensorSource {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly byteLength: number;
  /**
   * Streams the bytes in order, in chunks of at most `chunkBytes`. A chunk may be a view of a
   * reused buffer: consume it before pulling the next one.
   */
  chunks(chunkBytes?: number): AsyncIterable<Uint8Array>;
  /**
   * Optional: the tensor's current bytes as a tensor that stays valid whatever happens to this one
   * later, without copying (e.g. the storage of a tfjs CPU tensor, which tfjs never writes again:
   * a variable's assign switches it to new storage). Undefined when only a copy would do. Async
   * saves stage through this instead of copying big tensors.
   */
  snapshot?(): TensorSource | undefined;
}

/** Marker on every tensor object savepoint creates, so type checks survive duplicate installs. */
export const TENSOR_SOURCE = Symbol.for("savepoint.TensorSource");

/** True for objects created as savepoint tensors (`HostTensor`, `LazyTensor`, backend sources). */
export function isTensorSource(value: unknown): value is TensorSource {
  return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[TENSOR_SOURCE] === true;
}

/** Number of elements of a shape. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Default streaming chunk: large enough for disk speed, small enough to bound memory. */
export const DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024;
