// Promises for asynchronous copies. Each copy is followed on its stream by an event and a host
// callback; the callback (on CUDA's own thread) hands the copy to the JS thread through one
// thread-safe function, where the event's status settles the promise. Nothing parks a libuv
// thread-pool thread on cudaEventSynchronize, so file writes, which need that pool, keep going.
#pragma once

#include <cuda_runtime_api.h>
#include <napi.h>

#include <bitset>
#include <functional>

namespace savepoint_cuda {

class Completions {
 public:
  explicit Completions(Napi::Env env);
  ~Completions();

  // A promise settled once all work queued on `stream` so far has finished: resolved, or rejected
  // with CUDA's error. `keep_alive` (an object, or undefined) stays referenced until then, and
  // `release` runs on the JS thread just before the promise settles, whatever the outcome.
  Napi::Promise Track(Napi::Env env, int device, cudaStream_t stream, Napi::Value keep_alive, std::function<void()> release);

  struct Pending;

 private:
  static void OnHost(void* data);
  static void Settle(Napi::Env env, Napi::Function callback, Completions* self, Pending* pending);
  void Finish(Napi::Env env, Pending* pending, cudaError_t status);

  using Tsfn = Napi::TypedThreadSafeFunction<Completions, Pending, &Completions::Settle>;
  Tsfn tsfn_;
  size_t pending_ = 0;
  std::bitset<1025> devices_used_;
};

}  // namespace savepoint_cuda
