import type { CudaDeviceInfo, CudaNative, CudaProbe } from "../../src/native/cuda-native.js";

/** See emulated-cuda.mjs: the addon's contract acted out in host memory. */
export declare class EmulatedCuda implements CudaNative {
  readonly allocations: Map<bigint, { device: number; bytes: Uint8Array; uses: number }>;
  readonly pinned: Set<ArrayBuffer>;
  readonly streams: Map<bigint, { device: number; tail: Promise<void> }>;
  queued: number;
  maxQueued: number;
  readonly log: string[];
  failNext: { kind: "d2h" | "h2d" | "d2d"; code: string } | undefined;
  constructor(options?: { devices?: number; latency?: () => Promise<void> });
  probe(): CudaProbe;
  deviceInfo(device: number): CudaDeviceInfo;
  malloc(device: number, bytes: number): bigint;
  free(address: bigint): void;
  hostAlloc(bytes: number): ArrayBuffer;
  hostFree(buffer: ArrayBuffer): void;
  streamCreate(device: number): bigint;
  streamDestroy(stream: bigint): void;
  copyToHostAsync(device: number, stream: bigint, src: bigint, srcOffset: number, dst: Uint8Array): Promise<void>;
  copyToDeviceAsync(device: number, stream: bigint, src: Uint8Array, dst: bigint, dstOffset: number): Promise<void>;
  copyDeviceAsync(device: number, stream: bigint, dst: bigint, dstOffset: number, src: bigint, srcOffset: number, bytes: number): Promise<void>;
  copyToHostSync(device: number, src: bigint, srcOffset: number, dst: Uint8Array): void;
  copyToDeviceSync(device: number, src: Uint8Array, dst: bigint, dstOffset: number): void;
  /** The bytes of a device allocation, read without going through any backend (a back door). */
  peek(address: bigint): Uint8Array;
}
