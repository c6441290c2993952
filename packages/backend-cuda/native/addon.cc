// The savepoint_cuda addon: device memory, pinned host memory, streams, and copies between them.
// It exposes mechanisms only; the scheduling (chunking, buffer pool, overlap) is TypeScript.
#include <cuda_runtime_api.h>
#include <napi.h>

#include <memory>

#include "args.h"
#include "completions.h"
#include "cuda_error.h"
#include "device_memory.h"
#include "pinned_memory.h"
#include "probe.h"
#include "streams.h"

namespace savepoint_cuda {

class CudaAddon : public Napi::Addon<CudaAddon> {
 public:
  CudaAddon(Napi::Env env, Napi::Object exports) : completions_(std::make_unique<Completions>(env)) {
    DefineAddon(exports, {
                             InstanceMethod("probe", &CudaAddon::ProbeMethod),
                             InstanceMethod("deviceInfo", &CudaAddon::DeviceInfoMethod),
                             InstanceMethod("malloc", &CudaAddon::Malloc),
                             InstanceMethod("free", &CudaAddon::Free),
                             InstanceMethod("hostAlloc", &CudaAddon::HostAlloc),
                             InstanceMethod("hostFree", &CudaAddon::HostFree),
                             InstanceMethod("streamCreate", &CudaAddon::StreamCreate),
                             InstanceMethod("streamDestroy", &CudaAddon::StreamDestroy),
                             InstanceMethod("copyToHostAsync", &CudaAddon::CopyToHostAsync),
                             InstanceMethod("copyToDeviceAsync", &CudaAddon::CopyToDeviceAsync),
                             InstanceMethod("copyDeviceAsync", &CudaAddon::CopyDeviceAsync),
                             InstanceMethod("copyToHostSync", &CudaAddon::CopyToHostSync),
                             InstanceMethod("copyToDeviceSync", &CudaAddon::CopyToDeviceSync),
                         });
  }

 private:
  Napi::Value ProbeMethod(const Napi::CallbackInfo& info) { return Probe(info); }
  Napi::Value DeviceInfoMethod(const Napi::CallbackInfo& info) { return DeviceInfo(info); }

  // malloc(device, bytes) -> bigint
  Napi::Value Malloc(const Napi::CallbackInfo& info) {
    int device = DeviceArg(info, 0);
    size_t bytes = SizeArg(info, 1, "bytes");
    return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(device_memory::Allocate(info.Env(), device, bytes)));
  }

  // free(address)
  Napi::Value Free(const Napi::CallbackInfo& info) {
    device_memory::Free(info.Env(), PointerArg(info, 0, "address"));
    return info.Env().Undefined();
  }

  // hostAlloc(bytes) -> ArrayBuffer in pinned memory
  Napi::Value HostAlloc(const Napi::CallbackInfo& info) {
    return pinned_memory::Allocate(info.Env(), SizeArg(info, 0, "bytes"));
  }

  // hostFree(arrayBuffer)
  Napi::Value HostFree(const Napi::CallbackInfo& info) {
    if (!Arg(info, 0).IsArrayBuffer()) throw Napi::TypeError::New(info.Env(), "hostFree expects the ArrayBuffer from hostAlloc()");
    pinned_memory::Free(info.Env(), info[0].As<Napi::ArrayBuffer>());
    return info.Env().Undefined();
  }

  // streamCreate(device) -> bigint
  Napi::Value StreamCreate(const Napi::CallbackInfo& info) {
    return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(streams::Create(info.Env(), DeviceArg(info, 0))));
  }

  // streamDestroy(stream)
  Napi::Value StreamDestroy(const Napi::CallbackInfo& info) {
    streams::Destroy(info.Env(), PointerArg(info, 0, "stream"));
    return info.Env().Undefined();
  }

  // copyToHostAsync(device, stream, src, srcOffset, dst: Uint8Array in pinned memory) -> Promise
  Napi::Value CopyToHostAsync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int device = DeviceArg(info, 0);
    cudaStream_t stream = streams::Resolve(env, PointerArg(info, 1, "stream"));
    uintptr_t src = PointerArg(info, 2, "src");
    size_t src_offset = SizeArg(info, 3, "srcOffset");
    Napi::Uint8Array dst = BytesArg(info, 4, "dst");
    return HostTransfer(env, device, stream, src, src_offset, dst, cudaMemcpyDeviceToHost);
  }

  // copyToDeviceAsync(device, stream, src: Uint8Array in pinned memory, dst, dstOffset) -> Promise
  Napi::Value CopyToDeviceAsync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int device = DeviceArg(info, 0);
    cudaStream_t stream = streams::Resolve(env, PointerArg(info, 1, "stream"));
    Napi::Uint8Array src = BytesArg(info, 2, "src");
    uintptr_t dst = PointerArg(info, 3, "dst");
    size_t dst_offset = SizeArg(info, 4, "dstOffset");
    return HostTransfer(env, device, stream, dst, dst_offset, src, cudaMemcpyHostToDevice);
  }

  // copyDeviceAsync(device, stream, dst, dstOffset, src, srcOffset, bytes) -> Promise
  Napi::Value CopyDeviceAsync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int device = DeviceArg(info, 0);
    cudaStream_t stream = streams::Resolve(env, PointerArg(info, 1, "stream"));
    uintptr_t dst = PointerArg(info, 2, "dst");
    size_t dst_offset = SizeArg(info, 3, "dstOffset");
    uintptr_t src = PointerArg(info, 4, "src");
    size_t src_offset = SizeArg(info, 5, "srcOffset");
    size_t bytes = SizeArg(info, 6, "bytes");
    void* to = device_memory::Resolve(env, device, dst, dst_offset, bytes);
    void* from = device_memory::Resolve(env, device, src, src_offset, bytes);
    if (bytes == 0) return Resolved(env);
    Check(env, "cudaSetDevice", cudaSetDevice(device));
    Check(env, "cudaMemcpyAsync", cudaMemcpyAsync(to, from, bytes, cudaMemcpyDeviceToDevice, stream));
    device_memory::AddUse(dst);
    device_memory::AddUse(src);
    return completions_->Track(env, device, stream, env.Undefined(), [dst, src] {
      device_memory::ReleaseUse(dst);
      device_memory::ReleaseUse(src);
    });
  }

  // copyToHostSync(device, src, srcOffset, dst: Uint8Array, any host memory)
  Napi::Value CopyToHostSync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int device = DeviceArg(info, 0);
    uintptr_t src = PointerArg(info, 1, "src");
    size_t src_offset = SizeArg(info, 2, "srcOffset");
    Napi::Uint8Array dst = BytesArg(info, 3, "dst");
    void* from = device_memory::Resolve(env, device, src, src_offset, dst.ByteLength());
    if (dst.ByteLength() == 0) return env.Undefined();
    Check(env, "cudaSetDevice", cudaSetDevice(device));
    Check(env, "cudaMemcpy", cudaMemcpy(dst.Data(), from, dst.ByteLength(), cudaMemcpyDeviceToHost));
    return env.Undefined();
  }

  // copyToDeviceSync(device, src: Uint8Array, dst, dstOffset)
  Napi::Value CopyToDeviceSync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int device = DeviceArg(info, 0);
    Napi::Uint8Array src = BytesArg(info, 1, "src");
    uintptr_t dst = PointerArg(info, 2, "dst");
    size_t dst_offset = SizeArg(info, 3, "dstOffset");
    void* to = device_memory::Resolve(env, device, dst, dst_offset, src.ByteLength());
    if (src.ByteLength() == 0) return env.Undefined();
    Check(env, "cudaSetDevice", cudaSetDevice(device));
    Check(env, "cudaMemcpy", cudaMemcpy(to, src.Data(), src.ByteLength(), cudaMemcpyHostToDevice));
    return env.Undefined();
  }

  // One device allocation <-> pinned host view, in the direction given.
  Napi::Value HostTransfer(Napi::Env env, int device, cudaStream_t stream, uintptr_t device_address, size_t offset, Napi::Uint8Array host,
                           cudaMemcpyKind kind) {
    size_t bytes = host.ByteLength();
    void* on_device = device_memory::Resolve(env, device, device_address, offset, bytes);
    if (bytes == 0) return Resolved(env);
    uintptr_t pinned = pinned_memory::AddUse(env, host.Data(), bytes);
    cudaError_t status = cudaSetDevice(device);
    if (status == cudaSuccess) {
      status = kind == cudaMemcpyDeviceToHost ? cudaMemcpyAsync(host.Data(), on_device, bytes, kind, stream)
                                              : cudaMemcpyAsync(on_device, host.Data(), bytes, kind, stream);
    }
    if (status != cudaSuccess) {
      pinned_memory::ReleaseUse(pinned);
      Check(env, "cudaMemcpyAsync", status);
    }
    device_memory::AddUse(device_address);
    return completions_->Track(env, device, stream, host.ArrayBuffer(), [pinned, device_address] {
      pinned_memory::ReleaseUse(pinned);
      device_memory::ReleaseUse(device_address);
    });
  }

  static Napi::Value Resolved(Napi::Env env) {
    Napi::Promise::Deferred done = Napi::Promise::Deferred::New(env);
    done.Resolve(env.Undefined());
    return done.Promise();
  }

  std::unique_ptr<Completions> completions_;
};

}  // namespace savepoint_cuda

using savepoint_cuda::CudaAddon;
NODE_API_ADDON(CudaAddon)
