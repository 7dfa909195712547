#include "kvstore/kernels/cuda/swiglu.cuh"
#include "kvstore/kernels/host_device.h"
#include "launch_util.cuh"

namespace kvstore::kernels {
namespace {

__global__ void SwiGluKernel(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = SwiGlu(gate[i], up[i]);
}

}  // namespace

Status SwiGluCuda(const float* gate, const float* up, float* out, int64_t n, cudaStream_t stream) {
  if (n <= 0) return Status::Ok();
  SwiGluKernel<<<cuda_detail::GridFor(n), cuda_detail::kThreads, 0, stream>>>(gate, up, out, n);
  return cuda_detail::LaunchStatus("swiglu");
}

}  // namespace kvstore::kernels
