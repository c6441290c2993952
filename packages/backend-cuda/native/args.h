// Checked conversions of JavaScript arguments: device pointers arrive as BigInt, sizes and offsets
// as integral Numbers, host memory as Uint8Array. Anything else is a TypeError, never a crash.
#pragma once

#include <napi.h>

#include <cmath>
#include <cstdint>
#include <string>

namespace savepoint_cuda {

inline Napi::Value Arg(const Napi::CallbackInfo& info, size_t i) {
  return i < info.Length() ? info[i] : info.Env().Undefined();
}

inline uintptr_t PointerArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  Napi::Value v = Arg(info, i);
  if (!v.IsBigInt()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a BigInt device address");
  bool lossless = false;
  uint64_t value = v.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) throw Napi::TypeError::New(info.Env(), std::string(what) + " is not a 64-bit unsigned address");
  return static_cast<uintptr_t>(value);
}

// Byte counts and offsets: integral, non-negative, exactly representable as a double.
inline size_t SizeArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  Napi::Value v = Arg(info, i);
  if (!v.IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > 9007199254740991.0 || std::floor(d) != d) {
    throw Napi::RangeError::New(info.Env(), std::string(what) + " must be a non-negative safe integer");
  }
  return static_cast<size_t>(d);
}

inline int DeviceArg(const Napi::CallbackInfo& info, size_t i) {
  size_t d = SizeArg(info, i, "device");
  if (d > 1024) throw Napi::RangeError::New(info.Env(), "device index out of range");
  return static_cast<int>(d);
}

inline Napi::Uint8Array BytesArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  Napi::Value v = Arg(info, i);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a Uint8Array");
  }
  return v.As<Napi::Uint8Array>();
}

}  // namespace savepoint_cuda
