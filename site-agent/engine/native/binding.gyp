{
  "targets": [
    {
      "target_name": "fedsfda_native",
      "sources": ["src/addon.cc", "src/thread-pool.cc", "src/gemm.cc", "src/conv.cc", "src/pool.cc", "src/elementwise.cc", "src/direct-conv.cc", "src/plan.cc", "src/plan-conv.cc", "src/plan-elementwise.cc", "src/plan-loss.cc", "src/plan-binding.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_DISABLE_CPP_EXCEPTIONS", "NAPI_VERSION=8"],
      "cflags!": ["-O2", "-O0", "-fno-exceptions"],
      "cflags_cc!": ["-O2", "-O0", "-fno-exceptions"],
      "cflags": ["-O3", "-march=native", "-ffp-contract=fast", "-fno-math-errno"],
      "cflags_cc": ["-O3", "-march=native", "-ffp-contract=fast", "-fno-math-errno", "-std=gnu++17", "-pthread"],
      "ldflags": ["-pthread"]
    }
  ]
}
