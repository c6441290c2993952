import type { CudaNative } from "../native/cuda-native.js";
import { DeviceContext } from "./device-context.js";

const contexts = new WeakMap<CudaNative, Map<number, DeviceContext>>();

/**
 * The shared context of a device (default staging options), used by `CudaTensor`'s own transfers
 * and by backends whose tensors live on another device than theirs.
 */
export function defaultContext(native: CudaNative, device: number): DeviceContext {
  let byDevice = contexts.get(native);
  if (!byDevice) contexts.set(native, (byDevice = new Map()));
  let ctx = byDevice.get(device);
  if (!ctx) byDevice.set(device, (ctx = new DeviceContext(native, device)));
  return ctx;
}
