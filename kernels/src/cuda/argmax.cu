#include "kvstore/kernels/cuda/argmax.cuh"
#include "launch_util.cuh"

namespace kvstore::kernels {
namespace {

// True when candidate (v, i) beats the current best (bv, bi): larger value,
// smaller index on ties, and any number beats NaN.
__device__ __forceinline__ bool Better(float v, int i, float bv, int bi) {
  if (isnan(v)) return false;
  if (isnan(bv)) return true;
  return v > bv || (v == bv && i < bi);
}

__global__ void ArgmaxKernel(const float* __restrict__ logits, int32_t* __restrict__ out,
                             int vocab) {
  __shared__ float best_v[cuda_detail::kThreads];
  __shared__ int best_i[cuda_detail::kThreads];
  const float* row = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  float bv = NAN;
  int bi = vocab;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x)
    if (bi == vocab || Better(row[i], i, bv, bi)) {
      bv = row[i];
      bi = i;
    }
  best_v[threadIdx.x] = bv;
  best_i[threadIdx.x] = bi;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) {
      const int o = threadIdx.x + stride;
      if (best_i[o] < vocab &&
          (best_i[threadIdx.x] == vocab ||
           Better(best_v[o], best_i[o], best_v[threadIdx.x], best_i[threadIdx.x]))) {
        best_v[threadIdx.x] = best_v[o];
        best_i[threadIdx.x] = best_i[o];
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = best_i[0] == vocab ? 0 : best_i[0];
}

}  // namespace

Status ArgmaxCuda(const float* logits, int32_t* out, int rows, int vocab, cudaStream_t stream) {
  if (vocab <= 0) return Status::InvalidArgument("argmax: empty vocabulary");
  if (rows <= 0) return Status::Ok();
  ArgmaxKernel<<<rows, cuda_detail::kThreads, 0, stream>>>(logits, out, vocab);
  return cuda_detail::LaunchStatus("argmax");
}

}  // namespace kvstore::kernels
