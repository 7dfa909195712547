// Run-time detection of a usable CUDA device.
//
// Build machines and CI have no GPU: the CUDA runtime then reports an error
// (often 35, "insufficient driver") rather than zero devices. Any error counts
// as "no GPU".
//
// Thread-safety: safe to call from any thread.
#pragma once

#include "kvstore/kernels/status.h"

namespace kvstore::kernels {

// True when the kernels library was compiled with the CUDA kernels.
bool BuiltWithCuda();

// OK when at least one CUDA device is usable; otherwise Unavailable with the
// reason ("built without CUDA", "cudaGetDeviceCount: insufficient driver ...").
Status CudaDeviceStatus();

}  // namespace kvstore::kernels
