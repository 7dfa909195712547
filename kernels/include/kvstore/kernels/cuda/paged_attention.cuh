// Causal paged attention on the GPU (prefill and decode): one thread block per (token, head),
// online softmax over tiles of the context.
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

Status PagedAttentionCuda(const float* q,        // [num_tokens, num_heads, head_dim]
                          const float* k_cache,  // [num_blocks, block_size, kv_heads, head_dim]
                          const float* v_cache,  // [num_blocks, block_size, kv_heads, head_dim]
                          const int32_t* block_tables,  // [num_seqs, max_blocks_per_seq]
                          const int32_t* token_seq,     // [num_tokens]
                          const int32_t* token_pos,     // [num_tokens]
                          float* out,                   // [num_tokens, num_heads, head_dim]
                          const PagedAttentionParams& p, cudaStream_t stream);

}  // namespace kvstore::kernels
