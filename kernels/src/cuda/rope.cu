#include "kvstore/kernels/cuda/rope.cuh"
#include "kvstore/kernels/host_device.h"
#include "launch_util.cuh"

namespace kvstore::kernels {
namespace {

__global__ void RopeKernel(float* __restrict__ x, const int32_t* __restrict__ positions,
                           int num_tokens, int num_heads, int head_dim, RopeParams params) {
  const int half = head_dim / 2;
  const int64_t total = static_cast<int64_t>(num_tokens) * num_heads * half;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int pair = static_cast<int>(i % half);
    const int64_t vec = i / half;  // token * num_heads + head
    const int token = static_cast<int>(vec / num_heads);
    RopeRotate(x + vec * head_dim, pair, positions[token], head_dim, params);
  }
}

}  // namespace

Status RopeCuda(float* x, const int32_t* positions, int num_tokens, int num_heads, int head_dim,
                float theta, cudaStream_t stream) {
  RopeParams p;
  p.theta = theta;
  return RopeCuda(x, positions, num_tokens, num_heads, head_dim, p, stream);
}

Status RopeCuda(float* x, const int32_t* positions, int num_tokens, int num_heads, int head_dim,
                const RopeParams& params, cudaStream_t stream) {
  if (head_dim % 2 != 0) return Status::InvalidArgument("rope: head_dim must be even");
  const int64_t total = static_cast<int64_t>(num_tokens) * num_heads * (head_dim / 2);
  if (total == 0) return Status::Ok();
  RopeKernel<<<cuda_detail::GridFor(total), cuda_detail::kThreads, 0, stream>>>(
      x, positions, num_tokens, num_heads, head_dim, params);
  return cuda_detail::LaunchStatus("rope");
}

}  // namespace kvstore::kernels
