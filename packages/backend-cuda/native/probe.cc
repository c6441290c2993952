#include "probe.h"

#include <cuda_runtime_api.h>

#include <cstdio>
#include <string>

#include "args.h"
#include "cuda_error.h"

namespace savepoint_cuda {

Napi::Value Probe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  // cudaGetDeviceCount leaves its output untouched when it fails (no driver, no device), so the
  // count starts at 0 and only the return code says whether it means anything.
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    count = 0;
    cudaGetLastError();
  }
  int runtime_version = 0;
  int driver_version = 0;
  cudaRuntimeGetVersion(&runtime_version);
  if (cudaDriverGetVersion(&driver_version) != cudaSuccess) driver_version = 0;

  Napi::Object out = Napi::Object::New(env);
  out.Set("ok", Napi::Boolean::New(env, status == cudaSuccess && count > 0));
  out.Set("deviceCount", Napi::Number::New(env, count));
  out.Set("status", Napi::String::New(env, cudaGetErrorName(status)));
  out.Set("message", Napi::String::New(env, cudaGetErrorString(status)));
  out.Set("runtimeVersion", Napi::Number::New(env, runtime_version));
  out.Set("driverVersion", Napi::Number::New(env, driver_version));
  return out;
}

Napi::Value DeviceInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int device = DeviceArg(info, 0);
  cudaDeviceProp prop{};
  Check(env, "cudaGetDeviceProperties", cudaGetDeviceProperties(&prop, device));
  Check(env, "cudaSetDevice", cudaSetDevice(device));
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  Check(env, "cudaMemGetInfo", cudaMemGetInfo(&free_bytes, &total_bytes));
  char bus[32];
  std::snprintf(bus, sizeof bus, "%04x:%02x:%02x.0", prop.pciDomainID, prop.pciBusID, prop.pciDeviceID);

  Napi::Object out = Napi::Object::New(env);
  out.Set("name", Napi::String::New(env, prop.name));
  out.Set("totalMemory", Napi::Number::New(env, static_cast<double>(total_bytes)));
  out.Set("freeMemory", Napi::Number::New(env, static_cast<double>(free_bytes)));
  out.Set("asyncEngineCount", Napi::Number::New(env, prop.asyncEngineCount));
  out.Set("pciBusId", Napi::String::New(env, bus));
  out.Set("computeCapability", Napi::String::New(env, std::to_string(prop.major) + "." + std::to_string(prop.minor)));
  return out;
}

}  // namespace savepoint_cuda
