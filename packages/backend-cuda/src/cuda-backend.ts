import {
  DEFAULT_CHUNK_BYTES,
  encodeValues,
  HostTensor,
  InvalidArgumentError,
  readTensorBytes,
  StrictLoadError,
  type Backend,
  type DType,
  type TensorSource,
} from "@savepoint/core";
import { requireNative } from "./availability.js";
import { defaultContext } from "./device/default-contexts.js";
import { DeviceContext, type StagingOptions } from "./device/device-context.js";
import { asCudaError } from "./errors.js";
import type { CudaNative } from "./native/cuda-native.js";
import { deviceToHost } from "./staging/device-to-host.js";
import { hostToDevice } from "./staging/host-to-device.js";
import { convertDType } from "./tensor/convert-dtype.js";
import { allocate, CudaTensor, isCudaTensor, upload } from "./tensor/cuda-tensor.js";
import { isHostResident } from "./tensor/host-resident.js";

/** Marker core uses to recognise tensor sources (a registered symbol, shared by every copy of core). */
const TENSOR_SOURCE = Symbol.for("savepoint.TensorSource");

const FIX = "Check the GPU with nvidia-smi; if the error persists, restart the process.";

/** Options of {@link cudaBackend}. */
export interface CudaBackendOptions extends StagingOptions {
  /** Device of the tensors this backend creates (`create`, `fromHost`, ...). @default 0 */
  device?: number;
  /**
   * Loading into an existing tensor first streams the checkpoint into a scratch allocation and
   * copies it into the tensor only after every byte has arrived and passed its CRC check, so a
   * damaged file never leaves a tensor half overwritten. Costs one tensor's worth of device memory
   * for the duration of its load. `false` streams straight into the tensor. @default true
   */
  atomicAssign?: boolean;
}

/**
 * Tensors in CUDA device memory (`CudaTensor`). Saving streams each tensor device → host through a
 * few pinned buffers, one CUDA stream each, so the copy of the next chunk overlaps the write of the
 * current one; loading reads the file into pinned buffers and copies them to the device
 * asynchronously. Create it with {@link cudaBackend}.
 */
export class CudaBackend implements Backend {
  readonly name: string;
  readonly device: number;
  readonly #native: CudaNative;
  readonly #atomic: boolean;
  readonly #ctx: DeviceContext;

  /** @internal Use `cudaBackend()`; this takes the addon (or a stand-in for it) explicitly. */
  constructor(native: CudaNative, options: CudaBackendOptions = {}) {
    const device = options.device ?? 0;
    if (!Number.isSafeInteger(device) || device < 0) throw new InvalidArgumentError(`\`device\` must be a CUDA device index (0, 1, ...), got ${String(device)}.`);
    this.name = `cuda:${device}`;
    this.device = device;
    this.#native = native;
    this.#atomic = options.atomicAssign ?? true;
    const custom = options.stagingBuffers !== undefined || options.stagingBufferBytes !== undefined;
    this.#ctx = custom ? new DeviceContext(native, device, options) : defaultContext(native, device);
  }

  isTensor(value: unknown): boolean {
    return isCudaTensor(value) && value.native === this.#native;
  }

  isAssignable(value: unknown): boolean {
    return this.isTensor(value) && !(value as CudaTensor).isDisposed;
  }

  describe(tensor: unknown): { dtype: DType; shape: readonly number[] } {
    const t = this.#tensor(tensor);
    return { dtype: t.dtype, shape: t.shape };
  }

  toSource(tensor: unknown): TensorSource {
    const t = this.#tensor(tensor);
    const ctx = this.#contextFor(t);
    return {
      [TENSOR_SOURCE]: true,
      dtype: t.dtype,
      shape: t.shape,
      byteLength: t.byteLength,
      async *chunks(chunkBytes = DEFAULT_CHUNK_BYTES) {
        const lease = t.retain("save it");
        try {
          yield* deviceToHost({ byteLength: t.byteLength, chunkBytes, pool: ctx.pool, copy: ctx.copyToHost(lease.address) });
        } catch (error) {
          throw asCudaError(error, `copying a ${t.describe()} to the host`, FIX);
        } finally {
          lease.release();
        }
      },
    } as TensorSource;
  }

  async assign(target: unknown, source: TensorSource, key: string): Promise<void> {
    if (!this.isTensor(target)) throw new InvalidArgumentError(`${key} is not a CudaTensor of this backend; the CUDA backend loads in place only into CudaTensors.`, { subject: key });
    const t = target as CudaTensor;
    if (t.shape.length !== source.shape.length || t.shape.some((d, i) => d !== source.shape[i])) {
      throw new StrictLoadError(
        `size mismatch for ${key}: the checkpoint has shape [${source.shape.join(", ")}], the target has [${t.shape.join(", ")}]. Load a checkpoint of the same architecture, or transform it with loadRaw's \`map\`.`,
        { subject: key },
      );
    }
    // A device tensor keeps its dtype (like torch's copy_): convert on the host, all values first,
    // so a value that does not fit fails before the device is touched.
    const staged = source.dtype === t.dtype ? source : new HostTensor(t.dtype, t.shape, convertDType(await readTensorBytes(source), source.dtype, t.dtype, key));
    if (t.byteLength === 0) return;
    const ctx = this.#contextFor(t);
    const lease = t.retain(`load ${key} into it`);
    try {
      if (!this.#atomic || isHostResident(staged)) {
        await hostToDevice({ source: staged, pool: ctx.pool, copy: ctx.copyToDevice(lease.address) });
        return;
      }
      const scratch = this.#scratchFor(t, key);
      try {
        await hostToDevice({ source: staged, pool: ctx.pool, copy: ctx.copyToDevice(scratch.address) });
        await ctx.copyOnDevice(lease.address, scratch.address, t.byteLength);
      } finally {
        scratch.dispose();
      }
    } catch (error) {
      throw asCudaError(error, `loading ${key} into a ${t.describe()}`, FIX, key);
    } finally {
      lease.release();
    }
  }

  async create(source: TensorSource, key: string): Promise<CudaTensor> {
    const t = allocate(this.#native, this.device, source.dtype, source.shape);
    try {
      if (t.byteLength > 0) await hostToDevice({ source, pool: this.#ctx.pool, copy: this.#ctx.copyToDevice(t.address) });
    } catch (error) {
      t.dispose();
      throw asCudaError(error, `loading ${key} into a new ${t.describe()}`, FIX, key);
    }
    return t;
  }

  /** An uninitialised tensor on this backend's device. */
  empty(dtype: DType, shape: readonly number[]): CudaTensor {
    return allocate(this.#native, this.device, dtype, shape);
  }

  /** A tensor on this backend's device holding raw little-endian bytes (blocking copy). */
  fromHost(bytes: ArrayBufferView, dtype: DType, shape: readonly number[]): CudaTensor {
    return upload(this.#native, this.device, bytes, dtype, shape);
  }

  /** A tensor on this backend's device holding JavaScript values (blocking copy). */
  fromValues(dtype: DType, shape: readonly number[], values: ArrayLike<number> | ArrayLike<bigint>): CudaTensor {
    return this.fromHost(encodeValues(dtype, values), dtype, shape);
  }

  /**
   * Frees this backend's pinned staging buffers and streams (the process keeps them otherwise, to
   * reuse across saves). Call it when no save or load is running; later use makes new ones.
   */
  releaseBuffers(): void {
    this.#ctx.close();
  }

  #contextFor(t: CudaTensor): DeviceContext {
    return t.device === this.device ? this.#ctx : defaultContext(t.native, t.device);
  }

  #scratchFor(t: CudaTensor, key: string): CudaTensor {
    try {
      return allocate(this.#native, t.device, t.dtype, t.shape);
    } catch (error) {
      throw asCudaError(
        error,
        `loading ${key}: allocating a ${t.byteLength}-byte scratch copy on cuda:${t.device}`,
        "The CUDA backend loads into a scratch copy so a damaged checkpoint cannot leave the tensor half written; free device memory, or pass `atomicAssign: false` to cudaBackend() to load straight into the tensor.",
        key,
      );
    }
  }

  #tensor(value: unknown): CudaTensor {
    if (!this.isTensor(value)) {
      const what = isCudaTensor(value) ? "a CudaTensor of another copy of the addon" : value === null ? "null" : typeof value === "object" ? `an instance of ${value.constructor?.name ?? "Object"}` : typeof value;
      throw new InvalidArgumentError(`the CUDA backend expected a CudaTensor, got ${what}. Put CudaTensors in the state, or use the backend that owns these tensors.`);
    }
    return value as CudaTensor;
  }
}

/**
 * The CUDA backend for `new Fabric({ backend: cudaBackend() })`. Throws a `CudaUnavailableError`
 * (with CUDA's own error text and the fix) where the addon is not built or no GPU is usable;
 * check {@link isAvailable} first to choose another backend.
 *
 * @example
 * ```ts
 * import { Fabric } from "@savepoint/core";
 * import { cudaBackend, isAvailable } from "@savepoint/backend-cuda";
 * const cuda = cudaBackend();
 * const fabric = new Fabric({ backend: cuda });
 * await fabric.save("ckpt/last.ckpt", { weights: cuda.fromValues("float32", [2, 2], [1, 2, 3, 4]) });
 * ```
 */
export function cudaBackend(options: CudaBackendOptions = {}): CudaBackend {
  return new CudaBackend(requireNative("cudaBackend()"), options);
}
