#include "kvstore/kernels/cuda/rms_norm.cuh"
#include "kvstore/kernels/host_device.h"
#include "launch_util.cuh"

namespace kvstore::kernels {
namespace {

__global__ void RmsNormKernel(const float* __restrict__ x, const float* __restrict__ weight,
                              float* __restrict__ out, int dim, float eps) {
  __shared__ float partial[cuda_detail::kThreads];
  const float* xr = x + static_cast<int64_t>(blockIdx.x) * dim;
  float* yr = out + static_cast<int64_t>(blockIdx.x) * dim;
  float ss = 0.0f;
  for (int d = threadIdx.x; d < dim; d += blockDim.x) ss += xr[d] * xr[d];
  partial[threadIdx.x] = ss;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  const float inv = RmsInverse(partial[0], dim, eps);
  for (int d = threadIdx.x; d < dim; d += blockDim.x) yr[d] = xr[d] * inv * weight[d];
}

}  // namespace

Status RmsNormCuda(const float* x, const float* weight, float* out, int rows, int dim, float eps,
                   cudaStream_t stream) {
  if (rows < 0 || dim <= 0) return Status::InvalidArgument("rms_norm: bad shape");
  if (rows == 0) return Status::Ok();
  RmsNormKernel<<<rows, cuda_detail::kThreads, 0, stream>>>(x, weight, out, dim, eps);
  return cuda_detail::LaunchStatus("rms_norm");
}

}  // namespace kvstore::kernels
