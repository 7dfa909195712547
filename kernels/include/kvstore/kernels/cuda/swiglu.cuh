// SwiGLU activation on the GPU: out = silu(gate) * up.
//
// CUDA twin of the CPU function of the same name in kvstore/kernels/cpu_ops.h:
// same arguments (device pointers) plus the stream to launch on. Returns
// Internal if the launch failed; errors of an earlier asynchronous call may
// surface here too.
//
// Thread-safety: reentrant; ordering is the stream's.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kvstore/kernels/cpu_ops.h"
#include "kvstore/kernels/status.h"

namespace kvstore::kernels {

Status SwiGluCuda(const float* gate,  // [n]
                  const float* up,    // [n]
                  float* out,         // [n]
                  int64_t n, cudaStream_t stream);

}  // namespace kvstore::kernels
