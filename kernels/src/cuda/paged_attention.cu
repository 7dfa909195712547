#include <string>

#include "kvstore/kernels/cuda/paged_attention.cuh"
#include "kvstore/kernels/host_device.h"
#include "launch_util.cuh"

namespace kvstore::kernels {
namespace {

constexpr int kTile = 128;  // context positions per step; also the block size
constexpr int kMaxHeadDim = 256;
constexpr int kDimsPerThread = kMaxHeadDim / kTile;

// Reduces red[0..kTile) in place with op; every thread gets the result.
template <typename Op>
__device__ float BlockReduce(float* red, float v, Op op) {
  red[threadIdx.x] = v;
  __syncthreads();
  for (int stride = kTile / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) red[threadIdx.x] = op(red[threadIdx.x], red[threadIdx.x + stride]);
    __syncthreads();
  }
  const float result = red[0];
  __syncthreads();  // red is reused right after
  return result;
}

struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct SumOp {
  __device__ float operator()(float a, float b) const { return a + b; }
};

// One thread block per (token, head). Each step scores kTile context
// positions (one per thread), folds them into a running softmax (max m, sum
// l) and rescales the per-dimension accumulators, as in flash-decoding.
__global__ void PagedAttentionKernel(const float* __restrict__ q, const float* __restrict__ k_cache,
                                     const float* __restrict__ v_cache,
                                     const int32_t* __restrict__ block_tables,
                                     const int32_t* __restrict__ token_seq,
                                     const int32_t* __restrict__ token_pos, float* __restrict__ out,
                                     PagedAttentionParams p) {
  __shared__ float q_s[kMaxHeadDim];
  __shared__ float probs[kTile];
  __shared__ float red[kTile];
  const int64_t i = blockIdx.x;  // token * num_heads + head
  const int t = static_cast<int>(i / p.num_heads);
  const int h = static_cast<int>(i % p.num_heads);
  const int kvh = h / (p.num_heads / p.kv_heads);
  const int hd = p.head_dim;
  const int ctx = token_pos[t] + 1;
  const int32_t* row = block_tables + static_cast<int64_t>(token_seq[t]) * p.max_blocks_per_seq;
  for (int d = threadIdx.x; d < hd; d += kTile) q_s[d] = q[i * hd + d];
  __syncthreads();

  float acc[kDimsPerThread] = {};
  float m = -INFINITY, l = 0.0f;
  for (int start = 0; start < ctx; start += kTile) {
    const int j = start + threadIdx.x;
    bool valid = j < ctx && row[j / p.block_size] >= 0 && row[j / p.block_size] < p.num_blocks;
    float s = -INFINITY;
    if (valid) {
      const float* kv =
          k_cache + SlotOffset(PositionSlot(row, j, p.block_size), kvh, p.kv_heads, hd);
      float dot = 0.0f;
      for (int d = 0; d < hd; ++d) dot += q_s[d] * kv[d];
      s = dot * p.scale;
    }
    const float new_m = fmaxf(m, BlockReduce(red, s, MaxOp{}));
    const float e = valid ? expf(s - new_m) : 0.0f;
    probs[threadIdx.x] = e;
    const float tile_sum = BlockReduce(red, e, SumOp{});  // also orders the probs writes
    const float correction = expf(m - new_m);
    l = l * correction + tile_sum;
    const int tile_len = min(kTile, ctx - start);
    for (int r = 0; r < kDimsPerThread; ++r) {
      const int d = threadIdx.x + r * kTile;
      if (d >= hd) break;
      float a = acc[r] * correction;
      for (int jj = 0; jj < tile_len; ++jj) {
        const float w = probs[jj];
        if (w == 0.0f) continue;
        const int pos = start + jj;
        a += w * v_cache[SlotOffset(PositionSlot(row, pos, p.block_size), kvh, p.kv_heads, hd) + d];
      }
      acc[r] = a;
    }
    m = new_m;
    __syncthreads();  // probs is rewritten by the next step
  }
  for (int r = 0; r < kDimsPerThread; ++r) {
    const int d = threadIdx.x + r * kTile;
    if (d < hd) out[i * hd + d] = acc[r] / l;
  }
}

}  // namespace

Status PagedAttentionCuda(const float* q, const float* k_cache, const float* v_cache,
                          const int32_t* block_tables, const int32_t* token_seq,
                          const int32_t* token_pos, float* out, const PagedAttentionParams& p,
                          cudaStream_t stream) {
  if (p.kv_heads <= 0 || p.num_heads % p.kv_heads != 0 || p.head_dim <= 0 || p.block_size <= 0)
    return Status::InvalidArgument("paged_attention: bad head or block shape");
  if (p.head_dim > kMaxHeadDim)
    return Status::InvalidArgument("paged_attention: head_dim " + std::to_string(p.head_dim) +
                                   " above " + std::to_string(kMaxHeadDim));
  const int64_t blocks = static_cast<int64_t>(p.num_tokens) * p.num_heads;
  if (blocks == 0) return Status::Ok();
  PagedAttentionKernel<<<static_cast<unsigned>(blocks), kTile, 0, stream>>>(
      q, k_cache, v_cache, block_tables, token_seq, token_pos, out, p);
  return cuda_detail::LaunchStatus("paged_attention");
}

}  // namespace kvstore::kernels
