#include "pinned_memory.h"

#include <cuda_runtime_api.h>

#include <map>
#include <mutex>

#include "cuda_error.h"

namespace savepoint_cuda {
namespace pinned_memory {

namespace {

struct Block {
  uint8_t* data;
  size_t bytes;
  int uses;
  bool freed;
};

std::mutex mutex;
std::map<uintptr_t, Block*>& Table() {
  static auto* table = new std::map<uintptr_t, Block*>();  // never destroyed: finalizers may run late
  return *table;
}

// Runs on the JS thread when the ArrayBuffer is collected (or after Free detached it). The Block
// outlives an explicit Free exactly so that this callback can tell the two cases apart.
void Finalize(Napi::Env, void*, Block* block) {
  bool free_now = false;
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (!block->freed) {
      Table().erase(reinterpret_cast<uintptr_t>(block->data));
      block->freed = true;
      free_now = true;
    }
  }
  if (free_now) cudaFreeHost(block->data);  // errors at process exit (runtime unloading) are moot
  delete block;
}

}  // namespace

Napi::ArrayBuffer Allocate(Napi::Env env, size_t bytes) {
  void* data = nullptr;
  // Portable: usable as pinned memory from every device's context, not only the current one.
  Check(env, "cudaHostAlloc", cudaHostAlloc(&data, bytes == 0 ? 1 : bytes, cudaHostAllocPortable));
  auto* block = new Block{static_cast<uint8_t*>(data), bytes, 0, false};
  {
    std::lock_guard<std::mutex> lock(mutex);
    Table()[reinterpret_cast<uintptr_t>(data)] = block;
  }
  return Napi::ArrayBuffer::New(env, data, bytes, Finalize, block);
}

void Free(Napi::Env env, Napi::ArrayBuffer buffer) {
  uint8_t* data = static_cast<uint8_t*>(buffer.Data());
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = Table().find(reinterpret_cast<uintptr_t>(data));
    if (it == Table().end()) throw Napi::Error::New(env, "not a pinned buffer of this addon (freed twice?)");
    Block* block = it->second;
    if (block->uses > 0) throw Napi::Error::New(env, "the pinned buffer is still used by an asynchronous copy");
    block->freed = true;  // the finalizer now only deletes the Block
    Table().erase(it);
  }
  buffer.Detach();
  Check(env, "cudaFreeHost", cudaFreeHost(data));
}

uintptr_t AddUse(Napi::Env env, const uint8_t* data, size_t length) {
  std::lock_guard<std::mutex> lock(mutex);
  auto it = Table().upper_bound(reinterpret_cast<uintptr_t>(data));
  if (it != Table().begin()) {
    --it;
    Block* block = it->second;
    const uint8_t* end = block->data + block->bytes;
    if (data >= block->data && data <= end && length <= static_cast<size_t>(end - data)) {
      block->uses++;
      return it->first;
    }
  }
  throw Napi::Error::New(env, "asynchronous copies need pinned host memory from hostAlloc()");
}

void ReleaseUse(uintptr_t key) {
  std::lock_guard<std::mutex> lock(mutex);
  auto it = Table().find(key);
  if (it != Table().end() && it->second->uses > 0) it->second->uses--;
}

}  // namespace pinned_memory
}  // namespace savepoint_cuda
