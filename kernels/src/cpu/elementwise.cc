// CPU references of the element-wise kernels: RMSNorm, RoPE, SwiGLU,
// residual add, embedding, argmax.
#include <cmath>
#include <cstring>

#include "kvstore/kernels/cpu_ops.h"

namespace kvstore::kernels {

Status RmsNormCpu(const float* x, const float* weight, float* out, int rows, int dim, float eps) {
  if (rows < 0 || dim <= 0) return Status::InvalidArgument("rms_norm: bad shape");
  for (int r = 0; r < rows; ++r) {
    const float* xr = x + static_cast<int64_t>(r) * dim;
    float* yr = out + static_cast<int64_t>(r) * dim;
    // Eight partial sums: vectorizable and a fixed order.
    float acc[8] = {};
    int i = 0;
    for (; i + 8 <= dim; i += 8)
      for (int j = 0; j < 8; ++j) acc[j] += xr[i + j] * xr[i + j];
    float ss = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < dim; ++i) ss += xr[i] * xr[i];
    const float inv = RmsInverse(ss, dim, eps);
    for (int d = 0; d < dim; ++d) yr[d] = xr[d] * inv * weight[d];
  }
  return Status::Ok();
}

Status RopeCpu(float* x, const int32_t* positions, int num_tokens, int num_heads, int head_dim,
               const RopeParams& params) {
  if (head_dim % 2 != 0) return Status::InvalidArgument("rope: head_dim must be even");
  for (int t = 0; t < num_tokens; ++t)
    for (int h = 0; h < num_heads; ++h) {
      float* v = x + (static_cast<int64_t>(t) * num_heads + h) * head_dim;
      for (int i = 0; i < head_dim / 2; ++i) RopeRotate(v, i, positions[t], head_dim, params);
    }
  return Status::Ok();
}

Status RopeCpu(float* x, const int32_t* positions, int num_tokens, int num_heads, int head_dim,
               float theta) {
  RopeParams p;
  p.theta = theta;
  return RopeCpu(x, positions, num_tokens, num_heads, head_dim, p);
}

Status SwiGluCpu(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = SwiGlu(gate[i], up[i]);
  return Status::Ok();
}

Status ResidualAddCpu(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
  return Status::Ok();
}

Status EmbeddingCpu(const float* table, const int32_t* tokens, float* out, int num_tokens,
                    int vocab, int dim) {
  for (int t = 0; t < num_tokens; ++t) {
    float* row = out + static_cast<int64_t>(t) * dim;
    const int32_t id = tokens[t];
    if (id < 0 || id >= vocab) {
      std::memset(row, 0, sizeof(float) * dim);
    } else {
      std::memcpy(row, table + static_cast<int64_t>(id) * dim, sizeof(float) * dim);
    }
  }
  return Status::Ok();
}

Status ArgmaxCpu(const float* logits, int32_t* out, int rows, int vocab) {
  if (vocab <= 0) return Status::InvalidArgument("argmax: empty vocabulary");
  for (int r = 0; r < rows; ++r) {
    const float* row = logits + static_cast<int64_t>(r) * vocab;
    int32_t best = 0;
    for (int i = 1; i < vocab; ++i)
      if (row[i] > row[best] || (std::isnan(row[best]) && !std::isnan(row[i]))) best = i;
    out[r] = best;
  }
  return Status::Ok();
}

}  // namespace kvstore::kernels
