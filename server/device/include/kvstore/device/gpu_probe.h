// Detecting a usable GPU at run time. Any CUDA error counts as "no GPU": on a
// machine without a driver cudaGetDeviceCount returns 35 (insufficient
// driver), not "no device". The daemon calls ProbeGpu() once at start and
// logs `reason` when no GPU is usable; this header never logs.
//
// Thread-safety: thread-safe (the CUDA runtime serializes its own init).
#pragma once

#include <string>

namespace kvstore::device {

struct GpuProbe {
  int device_count = 0;
  // Why there is no GPU ("no GPU: cudaGetDeviceCount returned 35 (CUDA driver
  // version is insufficient for CUDA runtime version)", "built without CUDA"),
  // or what was found ("2 GPUs: NVIDIA H100 80GB HBM3, ...").
  std::string reason;

  bool available() const { return device_count > 0; }
};

GpuProbe ProbeGpu();
inline bool GpuAvailable() { return ProbeGpu().available(); }

// Whether this build has the CUDA path compiled in.
bool BuiltWithCuda();

}  // namespace kvstore::device
