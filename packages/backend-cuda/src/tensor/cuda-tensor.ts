import { decodeBytes, encodeValues, InvalidArgumentError, itemSize, numel, type DType, type TensorData } from "@savepoint/core";
import { requireNative } from "../availability.js";
import { defaultContext } from "../device/default-contexts.js";
import type { DeviceContext } from "../device/device-context.js";
import { asCudaError, cudaCall } from "../errors.js";
import type { CudaNative } from "../native/cuda-native.js";
import { deviceToHost } from "../staging/device-to-host.js";

/** Marks CudaTensors by a registered symbol, so two installed copies of this package agree. */
const BRAND = Symbol.for("savepoint.CudaTensor");

/** Where a new tensor goes. */
export interface CudaTensorOptions {
  /** CUDA device index. @default 0 */
  device?: number;
}

/** A counted use of a tensor's memory by a transfer; `release` ends it. */
export interface CudaTensorLease {
  readonly address: bigint;
  release(): void;
}

/**
 * A tensor in CUDA device memory: a device allocation with a savepoint dtype and a row-major
 * shape. Its memory is freed by `dispose()` (JavaScript's GC does not see device memory).
 *
 * @example
 * ```ts
 * const w = CudaTensor.fromValues("float32", [2, 2], [1, 2, 3, 4]);
 * console.log(await w.data()); // Float32Array [1, 2, 3, 4]
 * w.dispose();
 * ```
 */
export class CudaTensor {
  readonly [BRAND] = true;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly byteLength: number;
  readonly device: number;
  /** @internal The addon that owns the memory. */
  readonly native: CudaNative;
  #address: bigint;
  #uses = 0;
  #disposed = false;

  /** @internal Use `CudaTensor.empty` / `fromHost` / `fromValues`, or a backend's methods. */
  constructor(native: CudaNative, device: number, address: bigint, dtype: DType, shape: readonly number[]) {
    this.native = native;
    this.device = device;
    this.#address = address;
    this.dtype = dtype;
    this.shape = Object.freeze([...shape]);
    this.byteLength = numel(shape) * itemSize(dtype);
  }

  /** An uninitialised tensor. */
  static empty(dtype: DType, shape: readonly number[], options: CudaTensorOptions = {}): CudaTensor {
    return allocate(requireNative("CudaTensor.empty"), options.device ?? 0, dtype, shape);
  }

  /** A tensor holding `bytes` (raw little-endian, row-major; any typed array of the right length). */
  static fromHost(bytes: ArrayBufferView, dtype: DType, shape: readonly number[], options: CudaTensorOptions = {}): CudaTensor {
    return upload(requireNative("CudaTensor.fromHost"), options.device ?? 0, bytes, dtype, shape);
  }

  /** A tensor holding JavaScript values, converted to `dtype`. */
  static fromValues(dtype: DType, shape: readonly number[], values: ArrayLike<number> | ArrayLike<bigint>, options: CudaTensorOptions = {}): CudaTensor {
    return CudaTensor.fromHost(encodeValues(dtype, values), dtype, shape, options);
  }

  /** The device address (a `CUdeviceptr` as a BigInt). Throws once disposed. */
  get address(): bigint {
    this.#checkAlive("read its address");
    return this.#address;
  }

  get isDisposed(): boolean {
    return this.#disposed;
  }

  /** Number of elements. */
  get size(): number {
    return numel(this.shape);
  }

  /** The raw bytes, copied to the host through pinned staging buffers without blocking the thread. */
  async toHost(): Promise<Uint8Array> {
    const out = new Uint8Array(this.byteLength);
    const lease = this.retain("copy it to the host");
    try {
      const ctx = defaultContext(this.native, this.device);
      let offset = 0;
      for await (const chunk of deviceToHost({ byteLength: this.byteLength, chunkBytes: ctx.pool.bufferBytes, pool: ctx.pool, copy: ctx.copyToHost(lease.address) })) {
        out.set(chunk, offset);
        offset += chunk.byteLength;
      }
    } catch (error) {
      throw asCudaError(error, `copying a ${this.describe()} to the host`, "Check the GPU with nvidia-smi.");
    } finally {
      lease.release();
    }
    return out;
  }

  /** The raw bytes, with a blocking `cudaMemcpy` (simple, but stalls the event loop meanwhile). */
  toHostSync(): Uint8Array {
    const out = new Uint8Array(this.byteLength);
    const address = this.address;
    cudaCall(`copying a ${this.describe()} to the host`, "Check the GPU with nvidia-smi.", () => this.native.copyToHostSync(this.device, address, 0, out));
    return out;
  }

  /** The values as the natural JavaScript array of the dtype (float16/bfloat16 widen to float32). */
  async data(): Promise<TensorData> {
    return decodeBytes(this.dtype, await this.toHost());
  }

  /**
   * Frees the device memory. Transfers still running (a save in progress) finish first; the
   * memory is freed when the last one ends. Later uses throw. Calling it twice is harmless.
   */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.#uses === 0) this.#free();
  }

  /** @internal Counts a transfer's use of the memory; dispose() defers the free until release. */
  retain(doing: string): CudaTensorLease {
    this.#checkAlive(doing);
    this.#uses++;
    let released = false;
    return {
      address: this.#address,
      release: () => {
        if (released) return;
        released = true;
        if (--this.#uses === 0 && this.#disposed) this.#free();
      },
    };
  }

  /** A short description for messages. */
  describe(): string {
    return `${this.dtype} tensor of shape [${this.shape.join(", ")}] on cuda:${this.device}`;
  }

  toString(): string {
    return `CudaTensor(${this.dtype}, [${this.shape.join(", ")}], cuda:${this.device}${this.#disposed ? ", disposed" : ""})`;
  }

  #checkAlive(doing: string): void {
    if (this.#disposed) throw new InvalidArgumentError(`cannot ${doing}: the ${this.describe()} was disposed. Keep tensors alive (do not call dispose()) until save() or load() resolves.`);
  }

  #free(): void {
    const address = this.#address;
    this.#address = 0n;
    cudaCall(`freeing a ${this.describe()}`, "Check the GPU with nvidia-smi.", () => this.native.free(address));
  }
}

/** True for a `CudaTensor` of any installed copy of this package. */
export function isCudaTensor(value: unknown): value is CudaTensor {
  return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
}

/** @internal An uninitialised tensor on `device` of `native`. */
export function allocate(native: CudaNative, device: number, dtype: DType, shape: readonly number[]): CudaTensor {
  checkShape(shape);
  const bytes = numel(shape) * itemSize(dtype);
  const address = cudaCall(`allocating ${bytes} bytes on cuda:${device} for a ${dtype} tensor of shape [${shape.join(", ")}]`, "Check the device index and the GPU with nvidia-smi.", () =>
    native.malloc(device, bytes),
  );
  return new CudaTensor(native, device, address, dtype, shape);
}

/** @internal A tensor on `device` holding `bytes`, copied with a blocking cudaMemcpy. */
export function upload(native: CudaNative, device: number, bytes: ArrayBufferView, dtype: DType, shape: readonly number[]): CudaTensor {
  checkShape(shape);
  const expected = numel(shape) * itemSize(dtype);
  if (bytes.byteLength !== expected) throw new InvalidArgumentError(`a ${dtype} tensor of shape [${shape.join(", ")}] needs ${expected} bytes, got ${bytes.byteLength}.`);
  const tensor = allocate(native, device, dtype, shape);
  try {
    const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    cudaCall(`copying ${expected} bytes to ${tensor.describe()}`, "Check the GPU with nvidia-smi.", () => native.copyToDeviceSync(device, view, tensor.address, 0));
  } catch (error) {
    tensor.dispose();
    throw error;
  }
  return tensor;
}

function checkShape(shape: readonly number[]): void {
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new InvalidArgumentError(`tensor shape [${shape.join(", ")}] must hold non-negative integers.`);
  }
}
