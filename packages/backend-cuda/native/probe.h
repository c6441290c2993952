// What the CUDA runtime says about this machine, without throwing: the TypeScript side turns a
// failure into "unavailable: <CUDA's error name and text>".
#pragma once

#include <napi.h>

namespace savepoint_cuda {

// { ok, deviceCount, status, message, runtimeVersion, driverVersion }
Napi::Value Probe(const Napi::CallbackInfo& info);

// { name, totalMemory, freeMemory, asyncEngineCount, pciBusId, computeCapability }
Napi::Value DeviceInfo(const Napi::CallbackInfo& info);

}  // namespace savepoint_cuda
