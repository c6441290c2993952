/**
 * The few WebGPU members this package touches, typed structurally so that neither our code nor
 * our published `.d.ts` depends on `@webgpu/types` or on the `GPU*` globals (which Node has only
 * after the `webgpu` package installs them).
 */
export interface GpuBuffer {
  readonly size: number;
  readonly usage: number;
  readonly mapState?: "unmapped" | "pending" | "mapped";
  mapAsync(mode: number, offset?: number, size?: number): Promise<void>;
  getMappedRange(offset?: number, size?: number): ArrayBuffer;
  unmap(): void;
  destroy(): void;
}

export interface GpuCommandEncoder {
  copyBufferToBuffer(source: GpuBuffer, sourceOffset: number, destination: GpuBuffer, destinationOffset: number, size: number): void;
  finish(): unknown;
}

export interface GpuQueue {
  submit(commandBuffers: unknown[]): void;
  writeBuffer(buffer: GpuBuffer, bufferOffset: number, data: ArrayBufferView | ArrayBuffer, dataOffset?: number, size?: number): void;
  onSubmittedWorkDone(): Promise<void>;
}

export interface GpuDevice {
  readonly queue: GpuQueue;
  readonly limits: { readonly maxBufferSize: number };
  createBuffer(descriptor: { size: number; usage: number; mappedAtCreation?: boolean; label?: string }): GpuBuffer;
  createCommandEncoder(): GpuCommandEncoder;
}

/** `GPUBufferUsage` flags (WebGPU spec values; the globals may not exist in Node). */
export const BufferUsage = {
  MAP_READ: 0x0001,
  MAP_WRITE: 0x0002,
  COPY_SRC: 0x0004,
  COPY_DST: 0x0008,
  STORAGE: 0x0080,
} as const;

/** `GPUMapMode` flags. */
export const MapMode = { READ: 0x0001, WRITE: 0x0002 } as const;

/** True for a GPU buffer (as opposed to a texture or nothing), checked by shape. */
export function isGpuBuffer(value: unknown): value is GpuBuffer {
  return typeof value === "object" && value !== null && typeof (value as GpuBuffer).mapAsync === "function" && typeof (value as GpuBuffer).size === "number";
}
