#include "kvstore/kernels/cuda/kv_pack.cuh"
#include "kvstore/kernels/host_device.h"
#include "launch_util.cuh"

namespace kvstore::kernels {
namespace {

// kPack: payload <- cache; otherwise cache <- payload. The same index
// arithmetic as the CPU twin (PackChunkCacheOffset), one element per thread.
template <bool kPack>
__global__ void KvPackKernel(const float* __restrict__ src, const int32_t* __restrict__ block_ids,
                             int num_ids, float* __restrict__ dst, KvCacheShape shape) {
  const int64_t chunk = BlockElems(shape);
  const int64_t chunks_per_block = 2 * static_cast<int64_t>(shape.num_layers);
  const int64_t total = num_ids * chunks_per_block * chunk;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = i / chunk;
    const int32_t id = block_ids[c / chunks_per_block];
    if (id < 0 || id >= shape.num_blocks) continue;
    const int64_t cache_index = PackChunkCacheOffset(shape, id, c) + i % chunk;
    if (kPack) {
      dst[i] = src[cache_index];
    } else {
      dst[cache_index] = src[i];
    }
  }
}

}  // namespace

Status KvPackCuda(const float* cache, const int32_t* block_ids, int num_ids, float* out,
                  const KvCacheShape& shape, cudaStream_t stream) {
  const int64_t total = num_ids * PackedBlockElems(shape);
  if (total <= 0) return Status::Ok();
  KvPackKernel<true><<<cuda_detail::GridFor(total), cuda_detail::kThreads, 0, stream>>>(
      cache, block_ids, num_ids, out, shape);
  return cuda_detail::LaunchStatus("kv_pack");
}

Status KvUnpackCuda(const float* in, const int32_t* block_ids, int num_ids, float* cache,
                    const KvCacheShape& shape, cudaStream_t stream) {
  const int64_t total = num_ids * PackedBlockElems(shape);
  if (total <= 0) return Status::Ok();
  KvPackKernel<false><<<cuda_detail::GridFor(total), cuda_detail::kThreads, 0, stream>>>(
      in, block_ids, num_ids, cache, shape);
  return cuda_detail::LaunchStatus("kv_unpack");
}

}  // namespace kvstore::kernels
