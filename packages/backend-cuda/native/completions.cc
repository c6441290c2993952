#include "completions.h"

#include "cuda_error.h"

namespace savepoint_cuda {

struct Completions::Pending {
  Napi::Promise::Deferred deferred;
  cudaEvent_t event;
  int device;
  Napi::Reference<Napi::Value> keep_alive;
  std::function<void()> release;
  Completions* owner;
};

Completions::Completions(Napi::Env env) {
  // Unbounded queue (0) so CUDA's callback thread never blocks on us; one "thread" that is never
  // released, so the function lives as long as the environment. Unreferenced while idle, so an
  // idle addon never keeps the process alive; referenced while copies are in flight.
  tsfn_ = Tsfn::New(env, "savepoint-cuda-copies", 0, 1, this);
  tsfn_.Unref(env);
}

Completions::~Completions() {
  // The environment is going away (process.exit, worker end) with copies possibly in flight:
  // let their host callbacks run now, while the thread-safe function still exists.
  if (pending_ == 0) return;
  for (size_t d = 0; d < devices_used_.size(); d++) {
    if (devices_used_[d] && cudaSetDevice(static_cast<int>(d)) == cudaSuccess) cudaDeviceSynchronize();
  }
}

Napi::Promise Completions::Track(Napi::Env env, int device, cudaStream_t stream, Napi::Value keep_alive, std::function<void()> release) {
  auto* pending = new Pending{Napi::Promise::Deferred::New(env), nullptr, device, {}, std::move(release), this};
  Napi::Promise promise = pending->deferred.Promise();
  if (keep_alive.IsObject()) pending->keep_alive = Napi::Persistent(keep_alive);
  if (static_cast<size_t>(device) < devices_used_.size()) devices_used_.set(static_cast<size_t>(device));

  cudaError_t status = cudaEventCreateWithFlags(&pending->event, cudaEventDisableTiming);
  if (status == cudaSuccess) status = cudaEventRecord(pending->event, stream);
  if (status == cudaSuccess) status = cudaLaunchHostFunc(stream, &Completions::OnHost, pending);
  if (status != cudaSuccess) {
    // The copy itself may already be queued: wait for the stream so `release` is safe.
    cudaGetLastError();
    cudaStreamSynchronize(stream);
    Finish(env, pending, status);
    return promise;
  }
  if (pending_++ == 0) tsfn_.Ref(env);
  return promise;
}

// CUDA's callback thread: no CUDA calls allowed here, only the hand-off.
void Completions::OnHost(void* data) {
  auto* pending = static_cast<Pending*>(data);
  pending->owner->tsfn_.NonBlockingCall(pending);
}

// JS thread (env is null while the environment is being torn down: then only free C++ state).
void Completions::Settle(Napi::Env env, Napi::Function, Completions* self, Pending* pending) {
  if (env == nullptr) {
    pending->keep_alive.SuppressDestruct();
    if (pending->release) pending->release();
    delete pending;
    return;
  }
  cudaSetDevice(pending->device);
  // The callback runs after everything before it on the stream, so the event has completed,
  // unless the copy failed: then the query reports why.
  cudaError_t status = cudaEventQuery(pending->event);
  if (status == cudaErrorNotReady) status = cudaEventSynchronize(pending->event);
  if (--self->pending_ == 0) self->tsfn_.Unref(env);
  self->Finish(env, pending, status);
}

void Completions::Finish(Napi::Env env, Pending* pending, cudaError_t status) {
  if (pending->event != nullptr) cudaEventDestroy(pending->event);
  if (pending->release) pending->release();
  Napi::HandleScope scope(env);
  if (status == cudaSuccess) {
    pending->deferred.Resolve(env.Undefined());
  } else {
    cudaGetLastError();
    pending->deferred.Reject(CudaError(env, "asynchronous copy", status).Value());
  }
  delete pending;
}

}  // namespace savepoint_cuda
