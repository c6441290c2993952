{
  "variables": {
    "cuda_home%": "<!(node -p \"process.env.CUDA_HOME || process.env.CUDA_PATH || '/usr/local/cuda'\")",
    "cuda_libdir%": "<!(node -p \"process.env.SAVEPOINT_CUDA_LIBDIR || ((process.env.CUDA_HOME || process.env.CUDA_PATH || '/usr/local/cuda') + '/lib64')\")"
  },
  "targets": [
    {
      "target_name": "savepoint_cuda",
      "sources": [
        "native/addon.cc",
        "native/completions.cc",
        "native/device_memory.cc",
        "native/pinned_memory.cc",
        "native/probe.cc",
        "native/streams.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<(cuda_home)/include"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED"
      ],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": [
        "<(cuda_libdir)/libcudart_static.a",
        "-ldl",
        "-lpthread",
        "-lrt"
      ]
    }
  ]
}
