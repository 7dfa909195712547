// Writes new tokens' K and V into one layer's paged cache; a negative or out-of-range slot skips
// the token.
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

Status KvWriteCuda(const float* k,               // [num_tokens, kv_heads, head_dim]
                   const float* v,               // [num_tokens, kv_heads, head_dim]
                   const int32_t* slot_mapping,  // [num_tokens]
                   float* k_cache,               // [num_blocks, block_size, kv_heads, head_dim]
                   float* v_cache,               // [num_blocks, block_size, kv_heads, head_dim]
                   int num_tokens, int num_blocks, int block_size, int kv_heads, int head_dim,
                   cudaStream_t stream);

}  // namespace kvstore::kernels
