// CPU paged attention: one (token, head) pair at a time, two passes over the
// context (scores, then the softmax-weighted sum of V).
#include <cmath>
#include <string>
#include <vector>

#include "kvstore/kernels/cpu_ops.h"

namespace kvstore::kernels {

Status PagedAttentionCpu(const float* q, const float* k_cache, const float* v_cache,
                         const int32_t* block_tables, const int32_t* token_seq,
                         const int32_t* token_pos, float* out, const PagedAttentionParams& p,
                         ThreadPool* pool) {
  if (p.kv_heads <= 0 || p.num_heads % p.kv_heads != 0 || p.head_dim <= 0 || p.block_size <= 0)
    return Status::InvalidArgument("paged_attention: bad head or block shape");
  for (int t = 0; t < p.num_tokens; ++t) {
    const int pos = token_pos[t];
    if (pos < 0 || pos / p.block_size >= p.max_blocks_per_seq)
      return Status::InvalidArgument("paged_attention: position " + std::to_string(pos) +
                                     " outside the block table");
    const int32_t* row = block_tables + static_cast<int64_t>(token_seq[t]) * p.max_blocks_per_seq;
    for (int b = 0; b <= pos / p.block_size; ++b)
      if (row[b] < 0 || row[b] >= p.num_blocks)
        return Status::InvalidArgument("paged_attention: block id " + std::to_string(row[b]) +
                                       " out of range");
  }
  // Waking workers costs tens of microseconds: short contexts run inline.
  int64_t work = 0;
  for (int t = 0; t < p.num_tokens; ++t)
    work += int64_t(token_pos[t] + 1) * p.num_heads * p.head_dim;
  if (work < (int64_t{1} << 18)) pool = nullptr;
  const int group = p.num_heads / p.kv_heads;
  const int hd = p.head_dim;
  ParallelFor(pool, static_cast<int64_t>(p.num_tokens) * p.num_heads, [&](int64_t i0, int64_t i1) {
    std::vector<float> scores;
    std::vector<float> acc(hd);
    for (int64_t i = i0; i < i1; ++i) {
      const int t = static_cast<int>(i / p.num_heads);
      const int h = static_cast<int>(i % p.num_heads);
      const int kvh = h / group;
      const int ctx = token_pos[t] + 1;
      const int32_t* row = block_tables + static_cast<int64_t>(token_seq[t]) * p.max_blocks_per_seq;
      const float* qv = q + i * hd;
      scores.resize(ctx);
      float max_score = -INFINITY;
      for (int j = 0; j < ctx; ++j) {
        const float* kv =
            k_cache + SlotOffset(PositionSlot(row, j, p.block_size), kvh, p.kv_heads, hd);
        float s = 0.0f;
        for (int d = 0; d < hd; ++d) s += qv[d] * kv[d];
        s *= p.scale;
        scores[j] = s;
        if (s > max_score) max_score = s;
      }
      float sum = 0.0f;
      for (int j = 0; j < ctx; ++j) {
        scores[j] = expf(scores[j] - max_score);
        sum += scores[j];
      }
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int j = 0; j < ctx; ++j) {
        const float* vv =
            v_cache + SlotOffset(PositionSlot(row, j, p.block_size), kvh, p.kv_heads, hd);
        const float w = scores[j];
        for (int d = 0; d < hd; ++d) acc[d] += w * vv[d];
      }
      const float inv = 1.0f / sum;
      float* o = out + i * hd;
      for (int d = 0; d < hd; ++d) o[d] = acc[d] * inv;
    }
  });
  return Status::Ok();
}

}  // namespace kvstore::kernels
