// CPU element-wise kernels against plain double-precision references.
#include <gtest/gtest.h>

#include "status_matchers.h"

#include <cmath>

#include "kvstore/kernels/cpu_ops.h"
#include "poisoned_buffer.h"

namespace kvstore::kernels {
namespace {

using testing::PoisonedBuffer;
using testing::RandomFloats;

TEST(RmsNormCpu, MatchesReference) {
  const int rows = 5, dim = 77;
  auto x = RandomFloats(rows * dim, 1), w = RandomFloats(dim, 2);
  PoisonedBuffer<float> out(rows * dim);
  ASSERT_OK(RmsNormCpu(x.data(), w.data(), out.data(), rows, dim, 1e-5f));
  EXPECT_TRUE(out.GuardsIntact());
  for (int r = 0; r < rows; ++r) {
    double ss = 0;
    for (int d = 0; d < dim; ++d) ss += double(x[r * dim + d]) * x[r * dim + d];
    const double inv = 1.0 / std::sqrt(ss / dim + 1e-5);
    for (int d = 0; d < dim; ++d)
      EXPECT_NEAR(out[r * dim + d], x[r * dim + d] * inv * w[d], 1e-5) << r << "," << d;
  }
}

TEST(RmsNormCpu, InPlace) {
  const int dim = 64;
  auto x = RandomFloats(dim, 3), w = RandomFloats(dim, 4);
  std::vector<float> expected(dim);
  ASSERT_OK(RmsNormCpu(x.data(), w.data(), expected.data(), 1, dim, 1e-6f));
  ASSERT_OK(RmsNormCpu(x.data(), w.data(), x.data(), 1, dim, 1e-6f));
  EXPECT_EQ(x, expected);
}

TEST(RopeCpu, MatchesReferenceRotateHalf) {
  const int tokens = 3, heads = 2, hd = 16;
  const float theta = 10000.0f;
  auto x = RandomFloats(tokens * heads * hd, 5);
  const int32_t pos[tokens] = {0, 7, 1000};
  PoisonedBuffer<float> buf(x.size());
  std::copy(x.begin(), x.end(), buf.data());
  ASSERT_OK(RopeCpu(buf.data(), pos, tokens, heads, hd, theta));
  EXPECT_TRUE(buf.GuardsIntact());
  for (int t = 0; t < tokens; ++t)
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < hd / 2; ++i) {
        const double freq = std::pow(double(theta), -2.0 * i / hd);
        const double a = pos[t] * freq;
        const float* v = &x[(t * heads + h) * hd];
        const double y0 = v[i] * std::cos(a) - v[i + hd / 2] * std::sin(a);
        const double y1 = v[i + hd / 2] * std::cos(a) + v[i] * std::sin(a);
        // Angles up to 1000 rad in fp32 lose ~1e-4 absolute.
        EXPECT_NEAR(buf[(t * heads + h) * hd + i], y0, 2e-4);
        EXPECT_NEAR(buf[(t * heads + h) * hd + i + hd / 2], y1, 2e-4);
      }
}

TEST(RopeCpu, PositionZeroIsIdentity) {
  auto x = RandomFloats(32, 6);
  auto y = x;
  const int32_t pos = 0;
  ASSERT_OK(RopeCpu(y.data(), &pos, 1, 1, 32, 10000.0f));
  EXPECT_EQ(x, y);
}

TEST(RopeCpu, RejectsOddHeadDim) {
  float x[3] = {};
  const int32_t pos = 0;
  EXPECT_FALSE(RopeCpu(x, &pos, 1, 1, 3, 10000.0f).ok());
}

TEST(SwiGluCpu, MatchesReference) {
  const int n = 301;
  auto g = RandomFloats(n, 7, -6, 6), u = RandomFloats(n, 8);
  PoisonedBuffer<float> out(n);
  ASSERT_OK(SwiGluCpu(g.data(), u.data(), out.data(), n));
  EXPECT_TRUE(out.GuardsIntact());
  for (int i = 0; i < n; ++i)
    EXPECT_NEAR(out[i], g[i] / (1.0 + std::exp(-double(g[i]))) * u[i], 1e-6);
}

TEST(ResidualAddCpu, Adds) {
  const int n = 99;
  auto x = RandomFloats(n, 9), y = RandomFloats(n, 10);
  PoisonedBuffer<float> buf(n);
  std::copy(x.begin(), x.end(), buf.data());
  ASSERT_OK(ResidualAddCpu(buf.data(), y.data(), n));
  EXPECT_TRUE(buf.GuardsIntact());
  for (int i = 0; i < n; ++i) EXPECT_EQ(buf[i], x[i] + y[i]);
}

TEST(EmbeddingCpu, CopiesRowsAndZeroesOutOfRange) {
  const int vocab = 10, dim = 12;
  auto table = RandomFloats(vocab * dim, 11);
  const int32_t tokens[4] = {3, 0, 9, 10};
  PoisonedBuffer<float> out(4 * dim);
  ASSERT_OK(EmbeddingCpu(table.data(), tokens, out.data(), 4, vocab, dim));
  EXPECT_TRUE(out.GuardsIntact());
  for (int t = 0; t < 3; ++t)
    for (int d = 0; d < dim; ++d) EXPECT_EQ(out[t * dim + d], table[tokens[t] * dim + d]);
  for (int d = 0; d < dim; ++d) EXPECT_EQ(out[3 * dim + d], 0.0f);
}

TEST(ArgmaxCpu, LargestSmallestIndexOnTiesNanLoses) {
  const float logits[3 * 4] = {1,   5,  5,  2,   //
                               NAN, -1, -3, -1,  //
                               0,   0,  0,  7};
  PoisonedBuffer<int32_t> out(3);
  ASSERT_OK(ArgmaxCpu(logits, out.data(), 3, 4));
  EXPECT_TRUE(out.GuardsIntact());
  EXPECT_EQ(out[0], 1);
  EXPECT_EQ(out[1], 1);
  EXPECT_EQ(out[2], 3);
}

}  // namespace
}  // namespace kvstore::kernels
