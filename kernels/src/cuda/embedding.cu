#include "kvstore/kernels/cuda/embedding.cuh"
#include "launch_util.cuh"

namespace kvstore::kernels {
namespace {

__global__ void EmbeddingKernel(const float* __restrict__ table, const int32_t* __restrict__ tokens,
                                float* __restrict__ out, int num_tokens, int vocab, int dim) {
  const int64_t total = static_cast<int64_t>(num_tokens) * dim;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int32_t id = tokens[i / dim];
    out[i] = (id < 0 || id >= vocab) ? 0.0f : table[static_cast<int64_t>(id) * dim + i % dim];
  }
}

}  // namespace

Status EmbeddingCuda(const float* table, const int32_t* tokens, float* out, int num_tokens,
                     int vocab, int dim, cudaStream_t stream) {
  const int64_t total = static_cast<int64_t>(num_tokens) * dim;
  if (total <= 0) return Status::Ok();
  EmbeddingKernel<<<cuda_detail::GridFor(total), cuda_detail::kThreads, 0, stream>>>(
      table, tokens, out, num_tokens, vocab, dim);
  return cuda_detail::LaunchStatus("embedding");
}

}  // namespace kvstore::kernels
