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
constexpr int64_t kMinParallelMacs = 1 << 20;

__attribute__((always_inline)) inline float Combine(const float* acc) {
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// One x row against one w row.
__attribute__((always_inline)) inline float Dot1(const float* __restrict a,
                                                 const float* __restrict b, int k) {
  float acc[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= k; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += a[i + j] * b[i + j];
  float s = Combine(acc);
  for (; i < k; ++i) s += a[i] * b[i];
  return s;
}

// One x row against four w rows; per row the same arithmetic as Dot1.
__attribute__((always_inline)) inline void Dot4(const float* __restrict a,
                                                const float* __restrict b0,
                                                const float* __restrict b1,
                                                const float* __restrict b2,
                                                const float* __restrict b3, int k, float* out) {
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

// Two x rows against four w rows: each w load feeds two rows. Per output the
// same arithmetic as Dot1.
__attribute__((always_inline)) inline void Dot2x4(
    const float* __restrict a0, const float* __restrict a1, const float* __restrict b0,
    const float* __restrict b1, const float* __restrict b2, const float* __restrict b3, int k,
    float* out0, float* out1) {
  float c[8][kLanes] = {};
  int i = 0;
  for (; i + kLanes <= k; i += kLanes)
    for (int j = 0; j < kLanes; ++j) {
      const float x0 = a0[i + j], x1 = a1[i + j];
      const float w0 = b0[i + j], w1 = b1[i + j], w2 = b2[i + j], w3 = b3[i + j];
      c[0][j] += x0 * w0;
      c[1][j] += x0 * w1;
      c[2][j] += x0 * w2;
      c[3][j] += x0 * w3;
      c[4][j] += x1 * w0;
      c[5][j] += x1 * w1;
      c[6][j] += x1 * w2;
      c[7][j] += x1 * w3;
    }
  float s[8];
  for (int r = 0; r < 8; ++r) s[r] = Combine(c[r]);
  for (; i < k; ++i) {
    s[0] += a0[i] * b0[i];
    s[1] += a0[i] * b1[i];
    s[2] += a0[i] * b2[i];
    s[3] += a0[i] * b3[i];
    s[4] += a1[i] * b0[i];
    s[5] += a1[i] * b1[i];
    s[6] += a1[i] * b2[i];
    s[7] += a1[i] * b3[i];
  }
  for (int r = 0; r < 4; ++r) {
    out0[r] = s[r];
    out1[r] = s[4 + r];
  }
}

// Baseline x86-64 (SSE2) code: an AVX2 clone measured slower for decode (one
// row) and only ~10% faster for prefill, and one instruction set keeps
// results identical on every machine.
void MatmulTile(const float* x, const float* w, float* y, int m, int n, int k, int n0, int n1) {
  int r = 0;
  for (; r + 2 <= m; r += 2) {
    const float* x0 = x + static_cast<int64_t>(r) * k;
    float* y0 = y + static_cast<int64_t>(r) * n;
    int c = n0;
    for (; c + 4 <= n1; c += 4) {
      const float* wc = w + static_cast<int64_t>(c) * k;
      Dot2x4(x0, x0 + k, wc, wc + k, wc + 2 * static_cast<int64_t>(k),
             wc + 3 * static_cast<int64_t>(k), k, y0 + c, y0 + n + c);
    }
    for (; c < n1; ++c) {
      y0[c] = Dot1(x0, w + static_cast<int64_t>(c) * k, k);
      y0[n + c] = Dot1(x0 + k, w + static_cast<int64_t>(c) * k, k);
    }
  }
  for (; r < m; ++r) {
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
  // Waking workers costs tens of microseconds: small products run inline.
  if (static_cast<int64_t>(m) * n * k < kMinParallelMacs) pool = nullptr;
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
