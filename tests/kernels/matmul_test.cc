// CPU matmul against a naive triple loop in double precision.
#include <gtest/gtest.h>

#include "status_matchers.h"

#include <cmath>

#include "kvstore/kernels/cpu_ops.h"
#include "poisoned_buffer.h"

namespace kvstore::kernels {
namespace {

using testing::PoisonedBuffer;
using testing::RandomFloats;

void CheckMatmul(int m, int n, int k, ThreadPool* pool) {
  auto x = RandomFloats(size_t(m) * k, 100 + m), w = RandomFloats(size_t(n) * k, 200 + n);
  PoisonedBuffer<float> y(size_t(m) * n);
  ASSERT_OK(MatmulCpu(x.data(), w.data(), y.data(), m, n, k, pool));
  EXPECT_TRUE(y.GuardsIntact());
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double ref = 0;
      for (int p = 0; p < k; ++p) ref += double(x[i * k + p]) * w[j * k + p];
      ASSERT_NEAR(y[i * n + j], ref, 1e-4 * std::sqrt(double(k))) << m << "x" << n << "x" << k;
    }
}

TEST(MatmulCpu, ShapesIncludingRemainders) {
  for (int m : {1, 3, 17})
    for (int n : {1, 5, 16, 37})
      for (int k : {1, 7, 8, 64, 259}) CheckMatmul(m, n, k, nullptr);
}

TEST(MatmulCpu, ThreadedMatchesSerialBitForBit) {
  ThreadPool pool(3);
  const int m = 9, n = 133, k = 96;
  auto x = RandomFloats(size_t(m) * k, 1), w = RandomFloats(size_t(n) * k, 2);
  std::vector<float> a(m * n), b(m * n);
  ASSERT_OK(MatmulCpu(x.data(), w.data(), a.data(), m, n, k, nullptr));
  ASSERT_OK(MatmulCpu(x.data(), w.data(), b.data(), m, n, k, &pool));
  EXPECT_EQ(a, b);
  CheckMatmul(m, n, k, &pool);
}

TEST(MatmulCpu, RowResultIndependentOfBatch) {
  // Decode of one token must equal that token's row inside a prefill batch.
  const int m = 6, n = 50, k = 70;
  auto x = RandomFloats(size_t(m) * k, 3), w = RandomFloats(size_t(n) * k, 4);
  std::vector<float> all(m * n), one(n);
  ASSERT_OK(MatmulCpu(x.data(), w.data(), all.data(), m, n, k));
  ASSERT_OK(MatmulCpu(x.data() + 4 * k, w.data(), one.data(), 1, n, k));
  EXPECT_EQ(std::vector<float>(all.begin() + 4 * n, all.begin() + 5 * n), one);
}

TEST(MatmulCpu, RejectsBadShape) {
  float x = 0, w = 0, y = 0;
  EXPECT_FALSE(MatmulCpu(&x, &w, &y, 1, 0, 1).ok());
}

}  // namespace
}  // namespace kvstore::kernels
