// Rotary position embedding on the GPU, in place, one thread per rotated pair.
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

Status RopeCuda(float* x,                  // [num_tokens, num_heads, head_dim]
                const int32_t* positions,  // [num_tokens]
                int num_tokens, int num_heads, int head_dim, float theta, cudaStream_t stream);
Status RopeCuda(float* x,                  // [num_tokens, num_heads, head_dim]
                const int32_t* positions,  // [num_tokens]
                int num_tokens, int num_heads, int head_dim, const RopeParams& params,
                cudaStream_t stream);

}  // namespace kvstore::kernels
