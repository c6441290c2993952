import { InvalidArgumentError } from "@savepoint/core";
import { cudaCall } from "../errors.js";
import type { CudaNative } from "../native/cuda-native.js";
import type { CopyToDevice, CopyToHost } from "../staging/copies.js";
import { StagingPool } from "../staging/staging-pool.js";

/** How transfers between a device and the host are staged. */
export interface StagingOptions {
  /** Pinned staging buffers, each with its own CUDA stream: the most copies in flight. @default 4 */
  stagingBuffers?: number;
  /** Bytes per staging buffer: the largest chunk moved in one copy. @default 8 MiB */
  stagingBufferBytes?: number;
}

export const DEFAULT_STAGING_BUFFERS = 4;
export const DEFAULT_STAGING_BUFFER_BYTES = 8 * 1024 * 1024;

const FIX = "Check the GPU with nvidia-smi; if the error persists, restart the process (CUDA errors can poison the context).";

/**
 * One device as the backend uses it: the addon, the device index, a pool of pinned staging buffers
 * with one stream each, and one more stream for device-to-device copies. Streams and buffers are
 * made on first use and freed by `close()`.
 */
export class DeviceContext {
  readonly native: CudaNative;
  readonly device: number;
  readonly #staging: { count: number; bytes: number };
  #pool: StagingPool | undefined;
  readonly #streams: (bigint | undefined)[];
  #deviceStream: bigint | undefined;
  readonly #pinned = new Map<number, ArrayBuffer>();

  constructor(native: CudaNative, device: number, options: StagingOptions = {}) {
    const count = options.stagingBuffers ?? DEFAULT_STAGING_BUFFERS;
    const bytes = options.stagingBufferBytes ?? DEFAULT_STAGING_BUFFER_BYTES;
    if (!Number.isSafeInteger(count) || count < 1 || count > 64) throw new InvalidArgumentError(`\`stagingBuffers\` must be an integer from 1 to 64, got ${count}.`);
    if (!Number.isSafeInteger(bytes) || bytes < 4096 || bytes > 2 ** 31) throw new InvalidArgumentError(`\`stagingBufferBytes\` must be an integer from 4 KiB to 2 GiB, got ${bytes}.`);
    this.native = native;
    this.device = device;
    this.#streams = new Array<bigint | undefined>(count).fill(undefined);
    this.#staging = { count, bytes };
  }

  /** The staging buffers (made again after `close()`). */
  get pool(): StagingPool {
    return (this.#pool ??= new StagingPool({
      count: this.#staging.count,
      bufferBytes: this.#staging.bytes,
      allocate: (n, index) => {
        const buffer = cudaCall(`allocating ${n} bytes of pinned host memory for staging`, "Use fewer or smaller staging buffers (stagingBuffers, stagingBufferBytes).", () => this.native.hostAlloc(n));
        this.#pinned.set(index, buffer);
        return new Uint8Array(buffer);
      },
      free: (_bytes, index) => {
        const buffer = this.#pinned.get(index);
        this.#pinned.delete(index);
        if (buffer) this.native.hostFree(buffer);
      },
    }));
  }

  /** The stream of staging buffer `index`. */
  stream(index: number): bigint {
    return (this.#streams[index] ??= cudaCall(`creating a CUDA stream on device ${this.device}`, FIX, () => this.native.streamCreate(this.device)));
  }

  /** Device→host copies of the allocation at `address`, on each buffer's own stream. */
  copyToHost(address: bigint): CopyToHost {
    return (offset, into, slot) => this.native.copyToHostAsync(this.device, this.stream(slot.index), address, offset, into);
  }

  /** Host→device copies into the allocation at `address`, on each buffer's own stream. */
  copyToDevice(address: bigint): CopyToDevice {
    return (from, offset, slot) => this.native.copyToDeviceAsync(this.device, this.stream(slot.index), from, address, offset);
  }

  /** Copies `bytes` from one allocation to another on the device; resolves when done. */
  copyOnDevice(dst: bigint, src: bigint, bytes: number): Promise<void> {
    this.#deviceStream ??= cudaCall(`creating a CUDA stream on device ${this.device}`, FIX, () => this.native.streamCreate(this.device));
    return this.native.copyDeviceAsync(this.device, this.#deviceStream, dst, 0, src, 0, bytes);
  }

  /** Frees the staging buffers and streams (all transfers must have finished); later use makes new ones. */
  close(): void {
    this.#pool?.close();
    this.#pool = undefined;
    for (const s of this.#streams) if (s !== undefined) this.native.streamDestroy(s);
    this.#streams.fill(undefined);
    if (this.#deviceStream !== undefined) this.native.streamDestroy(this.#deviceStream);
    this.#deviceStream = undefined;
  }
}
