import { itemSize, type DType } from "../dtype.js";
import { InvalidArgumentError } from "../errors.js";
import { DEFAULT_CHUNK_BYTES, numel, TENSOR_SOURCE, type TensorSource } from "./tensor-source.js";
import { decodeBytes, encodeValues, type TensorData } from "./typed-arrays.js";

/**
 * A tensor held by savepoint itself rather than by a backend: what `fabric.load(path)` returns
 * for every tensor in a checkpoint, and what you may put in a state to save raw bytes.
 *
 * @example
 * ```ts
 * const ckpt = await fabric.load("model.ckpt");
 * const w = ckpt.model["dense.kernel"] as StoredTensor;
 * console.log(w.dtype, w.shape, await w.data());
 * ```
 */
export abstract class StoredTensor implements TensorSource {
  readonly [TENSOR_SOURCE] = true;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly byteLength: number;

  protected constructor(dtype: DType, shape: readonly number[]) {
    for (const d of shape) {
      if (!Number.isSafeInteger(d) || d < 0) throw new InvalidArgumentError(`tensor shape [${shape.join(", ")}] must hold non-negative integers.`);
    }
    this.dtype = dtype;
    this.shape = Object.freeze([...shape]);
    this.byteLength = numel(shape) * itemSize(dtype);
  }

  /** Number of elements. */
  get size(): number {
    return numel(this.shape);
  }

  /** Reads `length` bytes of the tensor starting at byte `offset`. */
  abstract readRange(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array>;

  async *chunks(chunkBytes = DEFAULT_CHUNK_BYTES): AsyncIterable<Uint8Array> {
    for (let off = 0; off < this.byteLength; off += chunkBytes) {
      yield await this.readRange(off, Math.min(chunkBytes, this.byteLength - off));
    }
  }

  /** All raw little-endian bytes. */
  bytes(): Promise<Uint8Array> {
    return this.readRange(0, this.byteLength);
  }

  /** Values as the natural JavaScript array of the dtype (float16/bfloat16 widen to float32). */
  async data(): Promise<TensorData> {
    return decodeBytes(this.dtype, await this.bytes());
  }

  toString(): string {
    return `${this.constructor.name}(${this.dtype}, [${this.shape.join(", ")}])`;
  }
}

/**
 * A tensor whose bytes are in memory.
 *
 * @example
 * ```ts
 * const t = HostTensor.fromValues("float32", [2, 2], [1, 2, 3, 4]);
 * ```
 */
export class HostTensor extends StoredTensor {
  /** The raw bytes (little-endian, row-major). */
  readonly raw: Uint8Array;

  constructor(dtype: DType, shape: readonly number[], raw: Uint8Array) {
    super(dtype, shape);
    if (raw.byteLength !== this.byteLength) {
      throw new InvalidArgumentError(`a ${dtype} tensor of shape [${shape.join(", ")}] needs ${this.byteLength} bytes, got ${raw.byteLength}.`);
    }
    this.raw = raw;
  }

  /** Builds a tensor from JavaScript values. */
  static fromValues(dtype: DType, shape: readonly number[], values: ArrayLike<number> | ArrayLike<bigint>): HostTensor {
    return new HostTensor(dtype, shape, encodeValues(dtype, values));
  }

  async readRange(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    const view = this.raw.subarray(offset, offset + length);
    if (into) {
      into.set(view);
      return into;
    }
    return view;
  }
}

/** Reads byte ranges of one tensor from wherever it is stored. */
export type RangeReader = (offset: number, length: number, into?: Uint8Array) => Promise<Uint8Array>;

/**
 * A tensor whose bytes stay in the checkpoint until touched: `data()`, `bytes()`, `chunks()` or
 * loading it into a model reads them, and only them.
 */
export class LazyTensor extends StoredTensor {
  readonly #read: RangeReader;
  /** Where the bytes live, for messages (e.g. `ckpt.pt:archive/data/3`). */
  readonly location: string;

  constructor(dtype: DType, shape: readonly number[], read: RangeReader, location: string) {
    super(dtype, shape);
    this.#read = read;
    this.location = location;
  }

  readRange(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    if (offset < 0 || length < 0 || offset + length > this.byteLength) {
      throw new InvalidArgumentError(`range [${offset}, ${offset + length}) is outside tensor ${this.location} of ${this.byteLength} bytes.`);
    }
    return this.#read(offset, length, into);
  }
}

/** True for tensors savepoint holds (`HostTensor`, `LazyTensor`). */
export function isStoredTensor(value: unknown): value is StoredTensor {
  return value instanceof StoredTensor;
}
