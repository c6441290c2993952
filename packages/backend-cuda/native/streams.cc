#include "streams.h"

#include <mutex>
#include <unordered_set>

#include "cuda_error.h"

namespace savepoint_cuda {
namespace streams {

namespace {
std::mutex mutex;
std::unordered_set<uintptr_t>& Live() {
  static auto* live = new std::unordered_set<uintptr_t>();
  return *live;
}
}  // namespace

uintptr_t Create(Napi::Env env, int device) {
  Check(env, "cudaSetDevice", cudaSetDevice(device));
  cudaStream_t stream = nullptr;
  Check(env, "cudaStreamCreateWithFlags", cudaStreamCreateWithFlags(&stream, cudaStreamDefault));
  std::lock_guard<std::mutex> lock(mutex);
  Live().insert(reinterpret_cast<uintptr_t>(stream));
  return reinterpret_cast<uintptr_t>(stream);
}

void Destroy(Napi::Env env, uintptr_t handle) {
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (Live().erase(handle) == 0) throw Napi::Error::New(env, "cudaStreamDestroy: not a live stream of this addon");
  }
  // Work still queued on the stream completes; the runtime releases the stream afterwards.
  Check(env, "cudaStreamDestroy", cudaStreamDestroy(reinterpret_cast<cudaStream_t>(handle)));
}

cudaStream_t Resolve(Napi::Env env, uintptr_t handle) {
  std::lock_guard<std::mutex> lock(mutex);
  if (Live().count(handle) == 0) throw Napi::Error::New(env, "not a live stream of this addon (destroyed?)");
  return reinterpret_cast<cudaStream_t>(handle);
}

}  // namespace streams
}  // namespace savepoint_cuda
