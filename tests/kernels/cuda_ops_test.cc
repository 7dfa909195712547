// Every CUDA kernel against its CPU twin, on the same inputs, with poisoned
// guards around device outputs. Skips (saying why) when the build has no CUDA
// or the machine has no usable GPU.
#include <gtest/gtest.h>

#include "status_matchers.h"

#include <cmath>
#include <numeric>
#include <vector>

#include "kvstore/kernels/cpu_ops.h"
#include "kvstore/kernels/device.h"
#include "poisoned_buffer.h"

#if defined(KVSTORE_HAVE_CUDA)
#include <cuda_runtime_api.h>

#include "kvstore/kernels/cuda/argmax.cuh"
#include "kvstore/kernels/cuda/embedding.cuh"
#include "kvstore/kernels/cuda/kv_pack.cuh"
#include "kvstore/kernels/cuda/kv_write.cuh"
#include "kvstore/kernels/cuda/matmul.cuh"
#include "kvstore/kernels/cuda/paged_attention.cuh"
#include "kvstore/kernels/cuda/residual_add.cuh"
#include "kvstore/kernels/cuda/rms_norm.cuh"
#include "kvstore/kernels/cuda/rope.cuh"
#include "kvstore/kernels/cuda/swiglu.cuh"
#endif

namespace kvstore::kernels {
namespace {

using testing::kGuard;
using testing::PoisonedBuffer;
using testing::RandomFloats;

class CudaOpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const Status gpu = CudaDeviceStatus();
    if (!gpu.ok()) GTEST_SKIP() << "no usable GPU, CUDA kernels not run: " << gpu.message();
  }
};

#if defined(KVSTORE_HAVE_CUDA)

// A device copy of a host array; with guards when built from a PoisonedBuffer.
template <typename T>
class Device {
 public:
  explicit Device(const std::vector<T>& host) : n_(host.size()) {
    EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&base_), sizeof(T) * (n_ ? n_ : 1)), cudaSuccess);
    cudaMemcpy(base_, host.data(), sizeof(T) * n_, cudaMemcpyHostToDevice);
  }
  explicit Device(PoisonedBuffer<T>& host) : n_(host.raw_size()), offset_(kGuard) {
    EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&base_), sizeof(T) * n_), cudaSuccess);
    cudaMemcpy(base_, host.raw(), sizeof(T) * n_, cudaMemcpyHostToDevice);
  }
  ~Device() { cudaFree(base_); }
  T* get() { return base_ + offset_; }
  void CopyTo(PoisonedBuffer<T>& host) {
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    cudaMemcpy(host.raw(), base_, sizeof(T) * n_, cudaMemcpyDeviceToHost);
  }

 private:
  T* base_ = nullptr;
  size_t n_;
  size_t offset_ = 0;
};

void ExpectNear(const PoisonedBuffer<float>& gpu, const std::vector<float>& cpu, float tol) {
  EXPECT_TRUE(gpu.GuardsIntact());
  ASSERT_EQ(gpu.size(), cpu.size());
  for (size_t i = 0; i < cpu.size(); ++i) ASSERT_NEAR(gpu[i], cpu[i], tol) << i;
}

TEST_F(CudaOpsTest, RmsNorm) {
  const int rows = 7, dim = 300;
  auto x = RandomFloats(rows * dim, 1), w = RandomFloats(dim, 2);
  std::vector<float> cpu(rows * dim);
  ASSERT_OK(RmsNormCpu(x.data(), w.data(), cpu.data(), rows, dim, 1e-5f));
  PoisonedBuffer<float> out(rows * dim);
  Device<float> dx(x), dw(w), dout(out);
  ASSERT_OK(RmsNormCuda(dx.get(), dw.get(), dout.get(), rows, dim, 1e-5f, nullptr));
  dout.CopyTo(out);
  ExpectNear(out, cpu, 1e-5f);
}

TEST_F(CudaOpsTest, Rope) {
  const int t = 5, h = 3, hd = 32;
  auto x = RandomFloats(t * h * hd, 3);
  std::vector<int32_t> pos = {0, 1, 17, 300, 2047};
  std::vector<float> cpu = x;
  ASSERT_OK(RopeCpu(cpu.data(), pos.data(), t, h, hd, 10000.0f));
  PoisonedBuffer<float> out(x.size());
  std::copy(x.begin(), x.end(), out.data());
  Device<float> dx(out);
  Device<int32_t> dpos(pos);
  ASSERT_OK(RopeCuda(dx.get(), dpos.get(), t, h, hd, 10000.0f, nullptr));
  dx.CopyTo(out);
  ExpectNear(out, cpu, 1e-3f);  // device sinf/cosf of large angles differ slightly
}

TEST_F(CudaOpsTest, SwiGluAndResidualAdd) {
  const int n = 1000;
  auto g = RandomFloats(n, 4, -5, 5), u = RandomFloats(n, 5);
  std::vector<float> cpu(n);
  ASSERT_OK(SwiGluCpu(g.data(), u.data(), cpu.data(), n));
  PoisonedBuffer<float> out(n);
  Device<float> dg(g), du(u), dout(out);
  ASSERT_OK(SwiGluCuda(dg.get(), du.get(), dout.get(), n, nullptr));
  dout.CopyTo(out);
  ExpectNear(out, cpu, 1e-5f);

  std::vector<float> sum = g;
  ASSERT_OK(ResidualAddCpu(sum.data(), u.data(), n));
  PoisonedBuffer<float> x(n);
  std::copy(g.begin(), g.end(), x.data());
  Device<float> dx(x);
  ASSERT_OK(ResidualAddCuda(dx.get(), du.get(), n, nullptr));
  dx.CopyTo(x);
  ExpectNear(x, sum, 0.0f);
}

TEST_F(CudaOpsTest, EmbeddingAndArgmax) {
  const int vocab = 50, dim = 24;
  auto table = RandomFloats(vocab * dim, 6);
  std::vector<int32_t> tokens = {3, 49, 0, 50, -2};
  std::vector<float> cpu(tokens.size() * dim);
  ASSERT_OK(EmbeddingCpu(table.data(), tokens.data(), cpu.data(), 5, vocab, dim));
  PoisonedBuffer<float> out(cpu.size());
  Device<float> dt(table), dout(out);
  Device<int32_t> dtok(tokens);
  ASSERT_OK(EmbeddingCuda(dt.get(), dtok.get(), dout.get(), 5, vocab, dim, nullptr));
  dout.CopyTo(out);
  ExpectNear(out, cpu, 0.0f);

  auto logits = RandomFloats(4 * 1000, 7);
  logits[1000 + 10] = logits[1000 + 20] = 5.0f;  // tie: index 10 wins
  std::vector<int32_t> cpu_idx(4);
  ASSERT_OK(ArgmaxCpu(logits.data(), cpu_idx.data(), 4, 1000));
  PoisonedBuffer<int32_t> idx(4);
  Device<float> dl(logits);
  Device<int32_t> didx(idx);
  ASSERT_OK(ArgmaxCuda(dl.get(), didx.get(), 4, 1000, nullptr));
  didx.CopyTo(idx);
  EXPECT_TRUE(idx.GuardsIntact());
  EXPECT_EQ(idx.Interior(), cpu_idx);
}

TEST_F(CudaOpsTest, MatmulThroughCublas) {
  const int m = 9, n = 70, k = 130;
  auto x = RandomFloats(m * k, 8), w = RandomFloats(n * k, 9);
  std::vector<float> cpu(m * n);
  ASSERT_OK(MatmulCpu(x.data(), w.data(), cpu.data(), m, n, k));
  cublasHandle_t handle;
  ASSERT_EQ(cublasCreate(&handle), CUBLAS_STATUS_SUCCESS);
  PoisonedBuffer<float> out(m * n);
  Device<float> dx(x), dw(w), dout(out);
  ASSERT_OK(MatmulCuda(dx.get(), dw.get(), dout.get(), m, n, k, handle, nullptr));
  dout.CopyTo(out);
  cublasDestroy(handle);
  ExpectNear(out, cpu, 1e-3f);
}

TEST_F(CudaOpsTest, KvWriteAttentionPackUnpack) {
  const KvCacheShape s{2, 8, 4, 2, 32};
  const int heads = 8, row = s.kv_heads * s.head_dim, len = 23;
  std::vector<int32_t> table = {6, 1, 3, 0, 5, 7};  // one sequence, 6 blocks
  auto k = RandomFloats(len * row, 10), v = RandomFloats(len * row, 11);
  std::vector<int32_t> slots(len);
  for (int p = 0; p < len; ++p) slots[p] = int32_t(PositionSlot(table.data(), p, s.block_size));
  const size_t layer_elems = size_t(LayerCacheElems(s));
  std::vector<float> kc(layer_elems, 0.0f), vc(layer_elems, 0.0f);
  ASSERT_OK(KvWriteCpu(k.data(), v.data(), slots.data(), kc.data(), vc.data(), len, s.num_blocks,
                       s.block_size, s.kv_heads, s.head_dim));
  PoisonedBuffer<float> gk(layer_elems), gv(layer_elems);
  std::fill(gk.data(), gk.data() + layer_elems, 0.0f);
  std::fill(gv.data(), gv.data() + layer_elems, 0.0f);
  Device<float> dk(k), dv(v), dkc(gk), dvc(gv);
  Device<int32_t> dslots(slots), dtable(table);
  ASSERT_OK(KvWriteCuda(dk.get(), dv.get(), dslots.get(), dkc.get(), dvc.get(), len, s.num_blocks,
                        s.block_size, s.kv_heads, s.head_dim, nullptr));
  dkc.CopyTo(gk);
  ExpectNear(gk, kc, 0.0f);

  // Attention: the whole prompt causally, as in prefill.
  auto q = RandomFloats(len * heads * s.head_dim, 12);
  std::vector<int32_t> seq(len, 0), pos(len);
  std::iota(pos.begin(), pos.end(), 0);
  PagedAttentionParams p{
      len,          heads,        s.kv_heads, s.head_dim,
      s.block_size, s.num_blocks, 6,          1.0f / std::sqrt(float(s.head_dim))};
  std::vector<float> cpu(q.size());
  ASSERT_OK(PagedAttentionCpu(q.data(), kc.data(), vc.data(), table.data(), seq.data(), pos.data(),
                              cpu.data(), p));
  PoisonedBuffer<float> out(q.size());
  Device<float> dq(q), dout(out);
  Device<int32_t> dseq(seq), dpos(pos);
  ASSERT_OK(PagedAttentionCuda(dq.get(), dkc.get(), dvc.get(), dtable.get(), dseq.get(), dpos.get(),
                               dout.get(), p, nullptr));
  dout.CopyTo(out);
  ExpectNear(out, cpu, 1e-5f);

  // Pack / unpack: exact.
  auto cache = RandomFloats(size_t(LayerCacheOffset(s, s.num_layers, 0)), 13);
  std::vector<int32_t> ids = {7, 2, 4};
  std::vector<float> packed(3 * PackedBlockElems(s));
  ASSERT_OK(KvPackCpu(cache.data(), ids.data(), 3, packed.data(), s));
  PoisonedBuffer<float> gpacked(packed.size());
  Device<float> dcache(cache), dpacked(gpacked);
  Device<int32_t> dids(ids);
  ASSERT_OK(KvPackCuda(dcache.get(), dids.get(), 3, dpacked.get(), s, nullptr));
  dpacked.CopyTo(gpacked);
  ExpectNear(gpacked, packed, 0.0f);

  std::vector<float> unpacked(cache.size(), 0.0f);
  ASSERT_OK(KvUnpackCpu(packed.data(), ids.data(), 3, unpacked.data(), s));
  PoisonedBuffer<float> gunpacked(cache.size());
  std::fill(gunpacked.data(), gunpacked.data() + cache.size(), 0.0f);
  Device<float> dpk(packed), dun(gunpacked);
  ASSERT_OK(KvUnpackCuda(dpk.get(), dids.get(), 3, dun.get(), s, nullptr));
  dun.CopyTo(gunpacked);
  ExpectNear(gunpacked, unpacked, 0.0f);
}

#else

TEST_F(CudaOpsTest, NotBuilt) {}  // SetUp skips: "built without CUDA"

#endif

}  // namespace
}  // namespace kvstore::kernels
