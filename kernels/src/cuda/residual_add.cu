#include "kvstore/kernels/cuda/residual_add.cuh"
#include "launch_util.cuh"

namespace kvstore::kernels {
namespace {

__global__ void ResidualAddKernel(float* __restrict__ x, const float* __restrict__ y, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] += y[i];
}

}  // namespace

Status ResidualAddCuda(float* x, const float* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return Status::Ok();
  ResidualAddKernel<<<cuda_detail::GridFor(n), cuda_detail::kThreads, 0, stream>>>(x, y, n);
  return cuda_detail::LaunchStatus("residual_add");
}

}  // namespace kvstore::kernels
