// CUDA status codes turned into JavaScript errors that carry CUDA's own name for the failure
// (e.g. cudaErrorInsufficientDriver), so the TypeScript side can quote it verbatim.
#pragma once

#include <cuda_runtime_api.h>
#include <napi.h>

#include <string>

namespace savepoint_cuda {

inline Napi::Error CudaError(Napi::Env env, const std::string& call, cudaError_t status) {
  const std::string name = cudaGetErrorName(status);
  Napi::Error error = Napi::Error::New(env, call + " failed: " + name + " (" + cudaGetErrorString(status) + ")");
  error.Set("code", Napi::String::New(env, name));
  error.Set("cudaCall", Napi::String::New(env, call));
  error.Set("cudaStatus", Napi::Number::New(env, static_cast<double>(status)));
  return error;
}

// Throws on failure. The runtime also remembers non-sticky errors as "last error"; clearing it
// keeps one failed call from being reported again by an unrelated later one.
inline void Check(Napi::Env env, const char* call, cudaError_t status) {
  if (status == cudaSuccess) return;
  cudaGetLastError();
  throw CudaError(env, call, status);
}

}  // namespace savepoint_cuda
