/**
 * The functions of the `savepoint_cuda` addon (native/addon.cc). Device addresses and stream
 * handles are BigInts; the addon checks every one against what it handed out. Asynchronous copies
 * take pinned host memory from `hostAlloc` and settle their promise on the JS thread when the
 * stream reaches them, rejecting with CUDA's error name as `code`.
 *
 * Tests implement this interface with host memory, so everything above it runs without a GPU.
 */
export interface CudaNative {
  probe(): CudaProbe;
  deviceInfo(device: number): CudaDeviceInfo;
  malloc(device: number, bytes: number): bigint;
  free(address: bigint): void;
  /** Page-locked host memory; `hostFree` detaches the buffer (its views become empty). */
  hostAlloc(bytes: number): ArrayBuffer;
  hostFree(buffer: ArrayBuffer): void;
  streamCreate(device: number): bigint;
  streamDestroy(stream: bigint): void;
  copyToHostAsync(device: number, stream: bigint, src: bigint, srcOffset: number, dst: Uint8Array): Promise<void>;
  copyToDeviceAsync(device: number, stream: bigint, src: Uint8Array, dst: bigint, dstOffset: number): Promise<void>;
  copyDeviceAsync(device: number, stream: bigint, dst: bigint, dstOffset: number, src: bigint, srcOffset: number, bytes: number): Promise<void>;
  /** Blocking copies; any host memory. */
  copyToHostSync(device: number, src: bigint, srcOffset: number, dst: Uint8Array): void;
  copyToDeviceSync(device: number, src: Uint8Array, dst: bigint, dstOffset: number): void;
}

/** What `cudaGetDeviceCount` and the version queries said. */
export interface CudaProbe {
  /** True when the call succeeded and found at least one device. */
  ok: boolean;
  deviceCount: number;
  /** CUDA's error name, e.g. `cudaSuccess`, `cudaErrorInsufficientDriver`, `cudaErrorNoDevice`. */
  status: string;
  /** CUDA's text for `status`. */
  message: string;
  /** e.g. 13000 for CUDA 13.0. */
  runtimeVersion: number;
  /** 0 when no driver is installed. */
  driverVersion: number;
}

/** One device, from `cudaGetDeviceProperties` and `cudaMemGetInfo`. */
export interface CudaDeviceInfo {
  name: string;
  totalMemory: number;
  freeMemory: number;
  /** Copy engines: 2 or more lets a device→host and a host→device copy run at once. */
  asyncEngineCount: number;
  pciBusId: string;
  computeCapability: string;
}
