import { cudaCall, CudaUnavailableError } from "./errors.js";
import type { CudaDeviceInfo, CudaNative, CudaProbe } from "./native/cuda-native.js";
import { loadAddon } from "./native/load-addon.js";

/** Whether CUDA can be used here, and if not, why. */
export interface CudaStatus {
  available: boolean;
  /** `"unavailable: ..."` with CUDA's own error text and what to do; absent when available. */
  reason?: string;
  deviceCount: number;
  /** CUDA's status name from `cudaGetDeviceCount` (absent when the addon did not load). */
  cudaStatus?: string;
  /** CUDA runtime the addon was built with, e.g. 13000; driver's supported version, 0 without a driver. */
  runtimeVersion?: number;
  driverVersion?: number;
  /** Where the addon is (or was looked for). */
  addonPath: string;
}

let cached: { status: CudaStatus; native?: CudaNative } | undefined;

/** Probes once per process: loads the addon and asks the CUDA runtime for devices. */
export function cudaStatus(): CudaStatus {
  return check().status;
}

/** True when the addon is built and the CUDA runtime sees at least one device. */
export function isAvailable(): boolean {
  return cudaStatus().available;
}

/** Why the backend is unavailable (`"unavailable: ..."`), or undefined when it is available. */
export function unavailableReason(): string | undefined {
  return cudaStatus().reason;
}

/** The addon, or a `CudaUnavailableError` explaining why there is none to use. */
export function requireNative(what: string): CudaNative {
  const { status, native } = check();
  if (!status.available || !native) throw new CudaUnavailableError(`${what} needs CUDA, which is ${status.reason}. Check \`isAvailable()\` from @savepoint/backend-cuda before using it.`);
  return native;
}

function check(): { status: CudaStatus; native?: CudaNative } {
  if (cached) return cached;
  const addon = loadAddon();
  if (!addon.native) {
    cached = { status: { available: false, reason: `unavailable: ${addon.reason}`, deviceCount: 0, addonPath: addon.path } };
    return cached;
  }
  let probe: CudaProbe;
  try {
    probe = addon.native.probe();
  } catch (error) {
    cached = { status: { available: false, reason: `unavailable: the addon's probe failed (${(error as Error).message})`, deviceCount: 0, addonPath: addon.path } };
    return cached;
  }
  const status: CudaStatus = {
    available: probe.ok,
    deviceCount: probe.deviceCount,
    cudaStatus: probe.status,
    runtimeVersion: probe.runtimeVersion,
    driverVersion: probe.driverVersion,
    addonPath: addon.path,
  };
  if (!probe.ok) status.reason = `unavailable: ${explain(probe)}`;
  cached = { status, native: probe.ok ? addon.native : undefined };
  return cached;
}

function version(v: number): string {
  return `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}`;
}

/** CUDA's own words first, then what they mean for the user. */
function explain(p: CudaProbe): string {
  const quoted = `cudaGetDeviceCount returned ${p.status} ("${p.message}")`;
  switch (p.status) {
    case "cudaSuccess":
      return `cudaGetDeviceCount found no CUDA device. Run on a machine with an NVIDIA GPU`;
    case "cudaErrorInsufficientDriver":
      return p.driverVersion === 0
        ? `${quoted}: no NVIDIA driver is installed (or no GPU is present). Install an NVIDIA driver that supports CUDA ${version(p.runtimeVersion)} on a machine with an NVIDIA GPU`
        : `${quoted}: the NVIDIA driver supports CUDA ${version(p.driverVersion)}, but the addon was built with CUDA ${version(p.runtimeVersion)}. Update the driver, or rebuild the addon with an older toolkit (CUDA_HOME)`;
    case "cudaErrorNoDevice":
      return `${quoted}: the driver sees no GPU. Check CUDA_VISIBLE_DEVICES and that the GPU is attached (nvidia-smi)`;
    default:
      return `${quoted}. Check the NVIDIA driver with nvidia-smi`;
  }
}

/** Name, memory and copy engines of a device (throws `CudaUnavailableError` where CUDA is unavailable). */
export function deviceInfo(device = 0): CudaDeviceInfo {
  const native = requireNative("deviceInfo()");
  return cudaCall(`reading the properties of cuda:${device}`, "Check the device index (CUDA_VISIBLE_DEVICES) and nvidia-smi.", () => native.deviceInfo(device));
}
