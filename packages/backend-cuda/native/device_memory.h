// Device allocations made through this addon. JavaScript holds device addresses as BigInts, so
// every copy is checked against a live allocation here: a stale or forged address is an error,
// not a DMA into someone else's memory.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace savepoint_cuda {

namespace device_memory {

// cudaMalloc on `device`; zero bytes still get a distinct address so empty tensors are uniform.
uintptr_t Allocate(Napi::Env env, int device, size_t bytes);

// cudaFree; refused while an asynchronous copy still uses the allocation.
void Free(Napi::Env env, uintptr_t address);

// The address of bytes [offset, offset + length) of the allocation starting at `address`, after
// checking it is live, on `device`, and large enough.
void* Resolve(Napi::Env env, int device, uintptr_t address, size_t offset, size_t length);

// Counts an in-flight asynchronous copy against the allocation (Free waits for zero).
void AddUse(uintptr_t address);
void ReleaseUse(uintptr_t address);

}  // namespace device_memory

}  // namespace savepoint_cuda
