// A stand-in for the CUDA runtime, for testing the addon's own C++ on machines without a GPU.
// It implements the calls the addon makes with host memory: each stream is a worker thread that
// runs its copies, event records and host callbacks in order (as a GPU stream does, and host
// callbacks run on a thread that is not the JS thread, as CUDA's do). Linked instead of
// libcudart_static by test/addon-stub.test.ts; never shipped.
//
// Environment: SAVEPOINT_FAKE_CUDA_DEVICES=0 makes cudaGetDeviceCount fail with cudaErrorNoDevice
// (leaving its output unwritten, as the real one does); SAVEPOINT_FAKE_CUDA_FAIL_COPY=N makes the
// N-th asynchronous copy (1-based) fail with cudaErrorIllegalAddress.
#include <cuda_runtime_api.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <set>
#include <thread>

namespace {

struct FakeStream {
  std::mutex mutex;
  std::condition_variable wake;
  std::condition_variable idle;
  std::deque<std::function<void()>> tasks;
  bool busy = false;
  bool stop = false;
  cudaError_t pending_error = cudaSuccess;  // an async failure, reported by the next event
  std::thread worker;

  FakeStream() {
    worker = std::thread([this] {
      for (;;) {
        std::function<void()> task;
        {
          std::unique_lock<std::mutex> lock(mutex);
          wake.wait(lock, [this] { return stop || !tasks.empty(); });
          if (tasks.empty()) return;
          task = std::move(tasks.front());
          tasks.pop_front();
          busy = true;
        }
        task();
        {
          std::lock_guard<std::mutex> lock(mutex);
          busy = false;
        }
        idle.notify_all();
      }
    });
  }

  void Push(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      tasks.push_back(std::move(task));
    }
    wake.notify_one();
  }

  void Drain() {
    std::unique_lock<std::mutex> lock(mutex);
    idle.wait(lock, [this] { return tasks.empty() && !busy; });
  }

  ~FakeStream() {
    Drain();
    {
      std::lock_guard<std::mutex> lock(mutex);
      stop = true;
    }
    wake.notify_one();
    worker.join();
  }
};

struct FakeEvent {
  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = true;
  cudaError_t status = cudaSuccess;
};

std::mutex streams_mutex;
std::set<FakeStream*> streams;
std::atomic<int> async_copies{0};
thread_local cudaError_t last_error = cudaSuccess;

cudaError_t Fail(cudaError_t e) {
  last_error = e;
  return e;
}

bool DeviceCountFails() {
  const char* v = std::getenv("SAVEPOINT_FAKE_CUDA_DEVICES");
  return v != nullptr && std::strcmp(v, "0") == 0;
}

}  // namespace

cudaError_t cudaGetDeviceCount(int* count) {
  if (DeviceCountFails()) return Fail(cudaErrorNoDevice);  // *count left as it was
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int* version) {
  *version = 13000;
  return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int* version) {
  *version = 13000;
  return cudaSuccess;
}

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    default: return "cudaErrorUnknown";
  }
}

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorMemoryAllocation: return "out of memory";
    default: return "fake CUDA runtime error";
  }
}

cudaError_t cudaGetLastError(void) {
  cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}

cudaError_t cudaSetDevice(int device) {
  if (DeviceCountFails()) return Fail(cudaErrorNoDevice);
  return device == 0 ? cudaSuccess : Fail(cudaErrorInvalidDevice);
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp* prop, int device) {
  if (device != 0) return Fail(cudaErrorInvalidDevice);
  std::memset(prop, 0, sizeof *prop);
  std::strcpy(prop->name, "fake CUDA device");
  prop->totalGlobalMem = size_t{1} << 34;
  prop->asyncEngineCount = 2;
  prop->major = 9;
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total) {
  *free_bytes = *total = size_t{1} << 34;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** ptr, size_t size) {
  if (size > (size_t{1} << 34)) return Fail(cudaErrorMemoryAllocation);
  *ptr = std::malloc(size);
  return *ptr ? cudaSuccess : Fail(cudaErrorMemoryAllocation);
}

cudaError_t cudaFree(void* ptr) {
  cudaDeviceSynchronize();  // like the real one: waits for work in flight
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaHostAlloc(void** ptr, size_t size, unsigned int) {
  *ptr = std::aligned_alloc(4096, (size + 4095) / 4096 * 4096);
  return *ptr ? cudaSuccess : Fail(cudaErrorMemoryAllocation);
}

cudaError_t cudaFreeHost(void* ptr) {
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int) {
  auto* s = new FakeStream();
  std::lock_guard<std::mutex> lock(streams_mutex);
  streams.insert(s);
  *stream = reinterpret_cast<cudaStream_t>(s);
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  auto* s = reinterpret_cast<FakeStream*>(stream);
  {
    std::lock_guard<std::mutex> lock(streams_mutex);
    streams.erase(s);
  }
  delete s;  // drains first
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  reinterpret_cast<FakeStream*>(stream)->Drain();
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
  std::lock_guard<std::mutex> lock(streams_mutex);
  for (FakeStream* s : streams) s->Drain();
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, enum cudaMemcpyKind) {
  std::memmove(dst, src, count);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, enum cudaMemcpyKind, cudaStream_t stream) {
  auto* s = reinterpret_cast<FakeStream*>(stream);
  int n = ++async_copies;
  const char* fail = std::getenv("SAVEPOINT_FAKE_CUDA_FAIL_COPY");
  bool fails = fail != nullptr && std::atoi(fail) == n;
  s->Push([s, dst, src, count, fails] {
    // Slow enough that copies overlap with JavaScript; the bytes move when the copy "completes".
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    if (fails) {
      std::lock_guard<std::mutex> lock(s->mutex);
      s->pending_error = cudaErrorIllegalAddress;
      return;
    }
    std::memmove(dst, src, count);
  });
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int) {
  *event = reinterpret_cast<cudaEvent_t>(new FakeEvent());
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  auto* e = reinterpret_cast<FakeEvent*>(event);
  auto* s = reinterpret_cast<FakeStream*>(stream);
  {
    std::lock_guard<std::mutex> lock(e->mutex);
    e->done = false;
  }
  s->Push([e, s] {
    cudaError_t status;
    {
      std::lock_guard<std::mutex> lock(s->mutex);
      status = s->pending_error;
      s->pending_error = cudaSuccess;
    }
    {
      std::lock_guard<std::mutex> lock(e->mutex);
      e->done = true;
      e->status = status;
    }
    e->done_cv.notify_all();
  });
  return cudaSuccess;
}

cudaError_t cudaEventQuery(cudaEvent_t event) {
  auto* e = reinterpret_cast<FakeEvent*>(event);
  std::lock_guard<std::mutex> lock(e->mutex);
  return e->done ? e->status : cudaErrorNotReady;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  auto* e = reinterpret_cast<FakeEvent*>(event);
  std::unique_lock<std::mutex> lock(e->mutex);
  e->done_cv.wait(lock, [e] { return e->done; });
  return e->status;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete reinterpret_cast<FakeEvent*>(event);
  return cudaSuccess;
}

cudaError_t cudaLaunchHostFunc(cudaStream_t stream, cudaHostFn_t fn, void* user_data) {
  reinterpret_cast<FakeStream*>(stream)->Push([fn, user_data] { fn(user_data); });
  return cudaSuccess;
}
