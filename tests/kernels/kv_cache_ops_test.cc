// KV write, pack and unpack (CPU): exact copies, and nothing written outside
// the slots and blocks named.
#include <gtest/gtest.h>

#include "status_matchers.h"

#include "kvstore/kernels/cpu_ops.h"
#include "poisoned_buffer.h"

namespace kvstore::kernels {
namespace {

using testing::PoisonedBuffer;
using testing::RandomFloats;

TEST(KvWriteCpu, WritesOnlyTheMappedSlots) {
  const int num_blocks = 4, bs = 4, kvh = 2, hd = 8, nt = 3, row = kvh * hd;
  auto k = RandomFloats(nt * row, 1), v = RandomFloats(nt * row, 2);
  const int32_t slots[nt] = {13, -1, 2};  // block 3 offset 1; skipped; block 0 offset 2
  PoisonedBuffer<float> kc(num_blocks * bs * row), vc(num_blocks * bs * row);
  ASSERT_OK(
      KvWriteCpu(k.data(), v.data(), slots, kc.data(), vc.data(), nt, num_blocks, bs, kvh, hd));
  EXPECT_TRUE(kc.GuardsIntact());
  EXPECT_TRUE(vc.GuardsIntact());
  for (int slot = 0; slot < num_blocks * bs; ++slot)
    for (int e = 0; e < row; ++e) {
      const float kv = kc[slot * row + e], vv = vc[slot * row + e];
      if (slot == 13) {
        EXPECT_EQ(kv, k[0 * row + e]);
        EXPECT_EQ(vv, v[0 * row + e]);
      } else if (slot == 2) {
        EXPECT_EQ(kv, k[2 * row + e]);
        EXPECT_EQ(vv, v[2 * row + e]);
      } else {
        EXPECT_TRUE(PoisonedBuffer<float>::IsPoison(kv)) << slot;
        EXPECT_TRUE(PoisonedBuffer<float>::IsPoison(vv)) << slot;
      }
    }
}

TEST(KvWriteCpu, RejectsSlotPastTheCache) {
  float k[2] = {}, cache[2] = {};
  const int32_t slot = 2;
  EXPECT_FALSE(KvWriteCpu(k, k, &slot, cache, cache, 1, 1, 2, 1, 1).ok());
}

KvCacheShape Shape() { return KvCacheShape{3, 6, 4, 2, 8}; }

// Value at (layer, kv, block, offset, head, d) of a cache, by explicit loops.
float CacheAt(const std::vector<float>& cache, const KvCacheShape& s, int l, int kv, int b, int o,
              int h, int d) {
  const size_t i =
      ((((size_t(l) * 2 + kv) * s.num_blocks + b) * s.block_size + o) * s.kv_heads + h) *
          s.head_dim +
      d;
  return cache[i];
}

TEST(KvPackCpu, GathersBlocksInPayloadOrder) {
  const KvCacheShape s = Shape();
  auto cache = RandomFloats(size_t(LayerCacheOffset(s, s.num_layers, 0)), 3);
  const int32_t ids[3] = {5, 2, 0};
  PoisonedBuffer<float> out(3 * PackedBlockElems(s));
  ASSERT_OK(KvPackCpu(cache.data(), ids, 3, out.data(), s));
  EXPECT_TRUE(out.GuardsIntact());
  size_t i = 0;  // payload: [n, layers, 2, block_size, kv_heads, head_dim]
  for (int n = 0; n < 3; ++n)
    for (int l = 0; l < s.num_layers; ++l)
      for (int kv = 0; kv < 2; ++kv)
        for (int o = 0; o < s.block_size; ++o)
          for (int h = 0; h < s.kv_heads; ++h)
            for (int d = 0; d < s.head_dim; ++d, ++i)
              ASSERT_EQ(out[i], CacheAt(cache, s, l, kv, ids[n], o, h, d)) << i;
  EXPECT_EQ(i, out.size());
}

TEST(KvUnpackCpu, ScattersIntoNamedBlocksOnly) {
  const KvCacheShape s = Shape();
  auto src = RandomFloats(size_t(LayerCacheOffset(s, s.num_layers, 0)), 4);
  const int32_t from[2] = {1, 4}, to[2] = {3, 0};
  std::vector<float> payload(2 * PackedBlockElems(s));
  ASSERT_OK(KvPackCpu(src.data(), from, 2, payload.data(), s));
  PoisonedBuffer<float> dst(size_t(LayerCacheOffset(s, s.num_layers, 0)));
  ASSERT_OK(KvUnpackCpu(payload.data(), to, 2, dst.data(), s));
  EXPECT_TRUE(dst.GuardsIntact());
  const auto d = dst.Interior();
  for (int l = 0; l < s.num_layers; ++l)
    for (int kv = 0; kv < 2; ++kv)
      for (int b = 0; b < s.num_blocks; ++b)
        for (int o = 0; o < s.block_size; ++o)
          for (int h = 0; h < s.kv_heads; ++h)
            for (int e = 0; e < s.head_dim; ++e) {
              const float got = CacheAt(d, s, l, kv, b, o, h, e);
              if (b == 3 || b == 0) {
                const int src_block = b == 3 ? 1 : 4;
                ASSERT_EQ(got, CacheAt(src, s, l, kv, src_block, o, h, e));
              } else {
                ASSERT_TRUE(PoisonedBuffer<float>::IsPoison(got)) << "block " << b;
              }
            }
}

TEST(KvPackCpu, RejectsBlockIdOutOfRange) {
  const KvCacheShape s = Shape();
  std::vector<float> cache(size_t(LayerCacheOffset(s, s.num_layers, 0))), out(PackedBlockElems(s));
  const int32_t bad = 6, neg = -1;
  EXPECT_FALSE(KvPackCpu(cache.data(), &bad, 1, out.data(), s).ok());
  EXPECT_FALSE(KvUnpackCpu(out.data(), &neg, 1, cache.data(), s).ok());
}

}  // namespace
}  // namespace kvstore::kernels
