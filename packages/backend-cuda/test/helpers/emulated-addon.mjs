// An EmulatedCuda shaped like the addon's exports, for SAVEPOINT_CUDA_ADDON: it lets the built
// package and scripts/gpu-bench.mjs run end to end on a machine without a GPU (a smoke test of
// the JavaScript around the addon; the numbers it prints mean nothing).
import { EmulatedCuda } from "./emulated-cuda.mjs";

const device = new EmulatedCuda();
const bind = (name) => device[name].bind(device);

export const probe = bind("probe");
export const deviceInfo = bind("deviceInfo");
export const malloc = bind("malloc");
export const free = bind("free");
export const hostAlloc = bind("hostAlloc");
export const hostFree = bind("hostFree");
export const streamCreate = bind("streamCreate");
export const streamDestroy = bind("streamDestroy");
export const copyToHostAsync = bind("copyToHostAsync");
export const copyToDeviceAsync = bind("copyToDeviceAsync");
export const copyDeviceAsync = bind("copyDeviceAsync");
export const copyToHostSync = bind("copyToHostSync");
export const copyToDeviceSync = bind("copyToDeviceSync");
