// CPU matrix multiply y = x * w^T.
//
// The inner product keeps eight independent partial sums, which the compiler
// turns into SIMD lanes without reassociating anything, and combines them in
// a fixed tree; four rows of w share each load of x. Work is split over w's
// rows, in tiles that stay in L1 while every row of x streams past them.
#include "kvstore/kernels/cpu_ops.h"

namespace kvstore::kernels {
namespace {

constexpr int kLanes = 8;
constexpr int kRowsPerTile = 16;

inline float Combine(const float* acc) {
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// One x row against one w row.
inline float Dot1(const float* __restrict a, const float* __restrict b, int k) {
  float acc[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= k; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += a[i + j] * b[i + j];
  float s = Combine(acc);
  for (; i < k; ++i) s += a[i] * b[i];
  return s;
}

// One x row against four w rows; per row the same arithmetic as Dot1.
inline void Dot4(const float* __restrict a, const float* __restrict b0, const float* __restrict b1,
                 const float* __restrict b2, const float* __restrict b3, int k, float* out) {
  float c0[kLanes] = {}, c1[kLanes] = {}, c2[kLanes] = {}, c3[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= k; i += kLanes)
    for (int j = 0; j < kLanes; ++j) {
      const float av = a[i + j];
      c0[j] += av * b0[i + j];
      c1[j] += av * b1[i + j];
      c2[j] += av * b2[i + j];
      c3[j] += av * b3[i + j];
    }
  float s0 = Combine(c0), s1 = Combine(c1), s2 = Combine(c2), s3 = Combine(c3);
  for (; i < k; ++i) {
    s0 += a[i] * b0[i];
    s1 += a[i] * b1[i];
    s2 += a[i] * b2[i];
    s3 += a[i] * b3[i];
  }
  out[0] = s0;
  out[1] = s1;
  out[2] = s2;
  out[3] = s3;
}

void MatmulTile(const float* x, const float* w, float* y, int m, int n, int k, int n0, int n1) {
  for (int r = 0; r < m; ++r) {
    const float* xr = x + static_cast<int64_t>(r) * k;
    float* yr = y + static_cast<int64_t>(r) * n;
    int c = n0;
    for (; c + 4 <= n1; c += 4) {
      const float* wc = w + static_cast<int64_t>(c) * k;
      Dot4(xr, wc, wc + k, wc + 2 * static_cast<int64_t>(k), wc + 3 * static_cast<int64_t>(k), k,
           yr + c);
    }
    for (; c < n1; ++c) yr[c] = Dot1(xr, w + static_cast<int64_t>(c) * k, k);
  }
}

}  // namespace

Status MatmulCpu(const float* x, const float* w, float* y, int m, int n, int k, ThreadPool* pool) {
  if (m < 0 || n <= 0 || k <= 0) return Status::InvalidArgument("matmul: bad shape");
  const int64_t tiles = (n + kRowsPerTile - 1) / kRowsPerTile;
  ParallelFor(pool, tiles, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int n0 = static_cast<int>(t * kRowsPerTile);
      const int n1 = n0 + kRowsPerTile < n ? n0 + kRowsPerTile : n;
      MatmulTile(x, w, y, m, n, k, n0, n1);
    }
  });
  return Status::Ok();
}

}  // namespace kvstore::kernels
