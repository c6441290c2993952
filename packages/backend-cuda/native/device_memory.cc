#include "device_memory.h"

#include <cuda_runtime_api.h>

#include <map>
#include <mutex>
#include <string>

#include "cuda_error.h"

namespace savepoint_cuda {
namespace device_memory {

namespace {

struct Allocation {
  size_t bytes;
  int device;
  int uses;
};

// Process-wide: device addresses are valid in every thread (worker_threads share them).
std::mutex mutex;
std::map<uintptr_t, Allocation>& Table() {
  static auto* table = new std::map<uintptr_t, Allocation>();  // never destroyed: finalizers may run late
  return *table;
}

}  // namespace

uintptr_t Allocate(Napi::Env env, int device, size_t bytes) {
  Check(env, "cudaSetDevice", cudaSetDevice(device));
  void* ptr = nullptr;
  Check(env, "cudaMalloc", cudaMalloc(&ptr, bytes == 0 ? 1 : bytes));
  std::lock_guard<std::mutex> lock(mutex);
  Table()[reinterpret_cast<uintptr_t>(ptr)] = Allocation{bytes, device, 0};
  return reinterpret_cast<uintptr_t>(ptr);
}

void Free(Napi::Env env, uintptr_t address) {
  int device = 0;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = Table().find(address);
    if (it == Table().end()) throw Napi::Error::New(env, "cudaFree: address is not a live allocation of this addon (freed twice?)");
    if (it->second.uses > 0) throw Napi::Error::New(env, "cudaFree: the allocation is still used by an asynchronous copy");
    device = it->second.device;
    Table().erase(it);
  }
  Check(env, "cudaSetDevice", cudaSetDevice(device));
  Check(env, "cudaFree", cudaFree(reinterpret_cast<void*>(address)));
}

void* Resolve(Napi::Env env, int device, uintptr_t address, size_t offset, size_t length) {
  std::lock_guard<std::mutex> lock(mutex);
  auto it = Table().find(address);
  if (it == Table().end()) throw Napi::Error::New(env, "device address is not a live allocation of this addon (used after dispose?)");
  const Allocation& a = it->second;
  if (a.device != device) {
    throw Napi::Error::New(env, "device address belongs to device " + std::to_string(a.device) + ", not " + std::to_string(device));
  }
  if (offset > a.bytes || length > a.bytes - offset) {
    throw Napi::RangeError::New(env, "range [" + std::to_string(offset) + ", " + std::to_string(offset + length) +
                                         ") is outside a device allocation of " + std::to_string(a.bytes) + " bytes");
  }
  return reinterpret_cast<void*>(address + offset);
}

void AddUse(uintptr_t address) {
  std::lock_guard<std::mutex> lock(mutex);
  auto it = Table().find(address);
  if (it != Table().end()) it->second.uses++;
}

void ReleaseUse(uintptr_t address) {
  std::lock_guard<std::mutex> lock(mutex);
  auto it = Table().find(address);
  if (it != Table().end() && it->second.uses > 0) it->second.uses--;
}

}  // namespace device_memory
}  // namespace savepoint_cuda
