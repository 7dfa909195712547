// KV pack/unpack on the GPU: gather whole blocks of the paged cache into the store payload and
// scatter them back. Block ids are device memory; an id out of range is skipped (the CPU twin
// rejects it).
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

Status KvPackCuda(
    const float* cache,        // [num_layers, 2, num_blocks, block_size, kv_heads, head_dim]
    const int32_t* block_ids,  // [num_ids]
    int num_ids,
    float* out,  // [num_ids, num_layers, 2, block_size, kv_heads, head_dim]
    const KvCacheShape& shape, cudaStream_t stream);

Status KvUnpackCuda(const float* in,  // [num_ids, num_layers, 2, block_size, kv_heads, head_dim]
                    const int32_t* block_ids,  // [num_ids]
                    int num_ids,
                    float* cache,  // [num_layers, 2, num_blocks, block_size, kv_heads, head_dim]
                    const KvCacheShape& shape, cudaStream_t stream);

}  // namespace kvstore::kernels
