{
  "targets": [
    {
      "target_name": "slbctl_native",
      "sources": ["src/addon.cc", "src/capture.cc", "src/nft.cc"],
      "libraries": ["-lpcap", "-lnftables"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"]
    }
  ]
}
