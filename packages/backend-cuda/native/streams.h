// CUDA streams created for JavaScript. Handles arrive back as BigInts and are checked against
// this set before use.
#pragma once

#include <cuda_runtime_api.h>
#include <napi.h>

#include <cstdint>

namespace savepoint_cuda {

namespace streams {

// A stream on `device`. It is a blocking stream (not cudaStreamNonBlocking) on purpose: its work
// waits for kernels already queued on the legacy default stream, so a copy never reads a tensor
// that a default-stream kernel is still writing.
uintptr_t Create(Napi::Env env, int device);
void Destroy(Napi::Env env, uintptr_t handle);
cudaStream_t Resolve(Napi::Env env, uintptr_t handle);

}  // namespace streams

}  // namespace savepoint_cuda
