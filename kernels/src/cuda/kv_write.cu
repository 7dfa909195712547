#include "kvstore/kernels/cuda/kv_write.cuh"
#include "kvstore/kernels/host_device.h"
#include "launch_util.cuh"

namespace kvstore::kernels {
namespace {

__global__ void KvWriteKernel(const float* __restrict__ k, const float* __restrict__ v,
                              const int32_t* __restrict__ slot_mapping, float* __restrict__ k_cache,
                              float* __restrict__ v_cache, int num_tokens, int64_t num_slots,
                              int kv_heads, int head_dim) {
  const int64_t row = static_cast<int64_t>(kv_heads) * head_dim;
  const int64_t total = num_tokens * row;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = i / row;
    const int64_t slot = slot_mapping[t];
    if (slot < 0 || slot >= num_slots) continue;
    const int64_t dst = SlotOffset(slot, 0, kv_heads, head_dim) + i % row;
    k_cache[dst] = k[i];
    v_cache[dst] = v[i];
  }
}

}  // namespace

Status KvWriteCuda(const float* k, const float* v, const int32_t* slot_mapping, float* k_cache,
                   float* v_cache, int num_tokens, int num_blocks, int block_size, int kv_heads,
                   int head_dim, cudaStream_t stream) {
  const int64_t total = static_cast<int64_t>(num_tokens) * kv_heads * head_dim;
  if (total <= 0) return Status::Ok();
  KvWriteKernel<<<cuda_detail::GridFor(total), cuda_detail::kThreads, 0, stream>>>(
      k, v, slot_mapping, k_cache, v_cache, num_tokens,
      static_cast<int64_t>(num_blocks) * block_size, kv_heads, head_dim);
  return cuda_detail::LaunchStatus("kv_write");
}

}  // namespace kvstore::kernels
