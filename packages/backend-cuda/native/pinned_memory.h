// Page-locked host memory (cudaHostAlloc) handed to JavaScript as ArrayBuffers. The copy engine
// reads and writes it by DMA, so it must never move or be freed while a copy is in flight.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace savepoint_cuda {

namespace pinned_memory {

// A new ArrayBuffer backed by pinned memory; freed by Free or, failing that, by the GC.
Napi::ArrayBuffer Allocate(Napi::Env env, size_t bytes);

// Frees the memory now and detaches the ArrayBuffer (its views become empty), so no JS code can
// touch freed memory. Refused while an asynchronous copy uses it.
void Free(Napi::Env env, Napi::ArrayBuffer buffer);

// Checks [data, data + length) lies inside one live pinned block and counts a use against it;
// returns the block's key for ReleaseUse. Asynchronous copies accept only such memory.
uintptr_t AddUse(Napi::Env env, const uint8_t* data, size_t length);
void ReleaseUse(uintptr_t key);

}  // namespace pinned_memory

}  // namespace savepoint_cuda
