// Paged attention (CPU) against naive causal attention over each sequence's
// whole unpaged K and V. Cache slots no sequence owns hold NaN poison, so a
// kernel that reads outside a sequence's blocks produces NaN and fails.
#include <gtest/gtest.h>

#include "status_matchers.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "kvstore/kernels/cpu_ops.h"
#include "poisoned_buffer.h"

namespace kvstore::kernels {
namespace {

using testing::PoisonedBuffer;
using testing::RandomFloats;

struct Case {
  int num_heads, kv_heads, head_dim, block_size;
  std::vector<int> seq_lens;                 // tokens of K/V per sequence
  std::vector<std::pair<int, int>> queries;  // (sequence, position)
};

// Naive attention for one query vector: softmax(q.K^T * scale) V over [0, pos].
std::vector<double> NaiveAttention(const float* q, const std::vector<float>& k,
                                   const std::vector<float>& v, int pos, int kvh, int kv_heads,
                                   int hd, float scale) {
  std::vector<double> s(pos + 1);
  double mx = -1e300;
  for (int j = 0; j <= pos; ++j) {
    double d = 0;
    for (int e = 0; e < hd; ++e) d += double(q[e]) * k[(size_t(j) * kv_heads + kvh) * hd + e];
    s[j] = d * scale;
    mx = std::max(mx, s[j]);
  }
  double sum = 0;
  for (auto& x : s) sum += (x = std::exp(x - mx));
  std::vector<double> out(hd, 0.0);
  for (int j = 0; j <= pos; ++j)
    for (int e = 0; e < hd; ++e) out[e] += s[j] / sum * v[(size_t(j) * kv_heads + kvh) * hd + e];
  return out;
}

void RunCase(const Case& c, ThreadPool* pool) {
  const int num_seqs = static_cast<int>(c.seq_lens.size());
  const int row = c.kv_heads * c.head_dim;
  int max_blocks = 0, total_blocks = 0;
  for (int len : c.seq_lens) {
    const int nb = (len + c.block_size - 1) / c.block_size;
    max_blocks = std::max(max_blocks, nb);
    total_blocks += nb;
  }
  const int num_blocks = total_blocks + 3;  // some blocks no sequence owns
  // Shuffled block ids, so a sequence's blocks are scattered.
  std::vector<int32_t> perm(num_blocks);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937(42));
  std::vector<int32_t> tables(size_t(num_seqs) * max_blocks, -1);
  std::vector<std::vector<float>> ks, vs;
  PoisonedBuffer<float> k_cache(size_t(num_blocks) * c.block_size * row);
  PoisonedBuffer<float> v_cache(size_t(num_blocks) * c.block_size * row);
  int next = 0;
  for (int s = 0; s < num_seqs; ++s) {
    const int len = c.seq_lens[s];
    ks.push_back(RandomFloats(size_t(len) * row, 10 + s));
    vs.push_back(RandomFloats(size_t(len) * row, 20 + s));
    for (int b = 0; b * c.block_size < len; ++b) tables[s * max_blocks + b] = perm[next++];
    std::vector<int32_t> slots(len);
    for (int p = 0; p < len; ++p)
      slots[p] = int32_t(PositionSlot(&tables[s * max_blocks], p, c.block_size));
    ASSERT_OK(KvWriteCpu(ks[s].data(), vs[s].data(), slots.data(), k_cache.data(), v_cache.data(),
                         len, num_blocks, c.block_size, c.kv_heads, c.head_dim));
  }
  const int nt = static_cast<int>(c.queries.size());
  auto q = RandomFloats(size_t(nt) * c.num_heads * c.head_dim, 7);
  std::vector<int32_t> token_seq(nt), token_pos(nt);
  for (int t = 0; t < nt; ++t) std::tie(token_seq[t], token_pos[t]) = c.queries[t];
  PagedAttentionParams p;
  p.num_tokens = nt;
  p.num_heads = c.num_heads;
  p.kv_heads = c.kv_heads;
  p.head_dim = c.head_dim;
  p.block_size = c.block_size;
  p.num_blocks = num_blocks;
  p.max_blocks_per_seq = max_blocks;
  p.scale = 1.0f / std::sqrt(float(c.head_dim));
  PoisonedBuffer<float> out(size_t(nt) * c.num_heads * c.head_dim);
  ASSERT_OK(PagedAttentionCpu(q.data(), k_cache.data(), v_cache.data(), tables.data(),
                              token_seq.data(), token_pos.data(), out.data(), p, pool));
  EXPECT_TRUE(out.GuardsIntact());
  EXPECT_TRUE(k_cache.GuardsIntact());
  const int group = c.num_heads / c.kv_heads;
  for (int t = 0; t < nt; ++t)
    for (int h = 0; h < c.num_heads; ++h) {
      const float* qv = &q[(size_t(t) * c.num_heads + h) * c.head_dim];
      auto ref = NaiveAttention(qv, ks[token_seq[t]], vs[token_seq[t]], token_pos[t], h / group,
                                c.kv_heads, c.head_dim, p.scale);
      for (int e = 0; e < c.head_dim; ++e)
        ASSERT_NEAR(out[(size_t(t) * c.num_heads + h) * c.head_dim + e], ref[e], 2e-5)
            << "token " << t << " head " << h << " dim " << e;
    }
}

TEST(PagedAttentionCpu, PrefillWholePromptCausal) {
  Case c{8, 2, 32, 16, {37}, {}};
  for (int p = 0; p < 37; ++p) c.queries.push_back({0, p});
  RunCase(c, nullptr);
}

TEST(PagedAttentionCpu, PrefillTailAfterCachedBlocks) {
  Case c{4, 4, 16, 8, {29}, {}};
  for (int p = 16; p < 29; ++p) c.queries.push_back({0, p});
  RunCase(c, nullptr);
}

TEST(PagedAttentionCpu, BatchedDecodeAcrossSequences) {
  Case c{8, 2, 32, 16, {1, 16, 45, 17}, {{0, 0}, {1, 15}, {2, 44}, {3, 16}}};
  ThreadPool pool(2);
  RunCase(c, &pool);
}

TEST(PagedAttentionCpu, BlockSizeOneAndMultiQueryAttention) {
  Case c{6, 1, 8, 1, {5, 3}, {{0, 4}, {1, 2}, {0, 1}}};
  RunCase(c, nullptr);
}

TEST(PagedAttentionCpu, RejectsPositionsOutsideTheTable) {
  float q[8] = {}, cache[8] = {}, out[8];
  const int32_t table[1] = {0}, seq[1] = {0}, pos[1] = {1};
  PagedAttentionParams p{1, 1, 1, 8, 1, 1, 1, 1.0f};
  EXPECT_FALSE(PagedAttentionCpu(q, cache, cache, table, seq, pos, out, p).ok());
}

}  // namespace
}  // namespace kvstore::kernels
