// The CUDA backend of the model against the CPU backend: prefill and decode
// logits, greedy tokens, batched decode, prefix sharing, and the packed KV
// bytes. The GPU tests skip (saying why) when no usable GPU is present; the
// backend-selection tests for a machine without one skip when a GPU is there.
#include <gtest/gtest.h>

#include "status_matchers.h"

#include <algorithm>
#include <cstring>

#include "kvstore/engine/model.h"
#include "kvstore/kernels/device.h"
#include "reference_model.h"

namespace kvstore::engine {
namespace {

// GPU and CPU logits agree to this absolute tolerance: both fp32, but cuBLAS
// and the online-softmax attention sum in a different order (logits are
// O(1..10), two layers).
constexpr float kLogitTolerance = 2e-3f;
// Packed K/V values (O(1)) agree to this absolute tolerance.
constexpr float kKvTolerance = 1e-3f;

#define SKIP_WITHOUT_GPU()                                                     \
  do {                                                                         \
    const kernels::Status device_ = kernels::CudaDeviceStatus();               \
    if (!device_.ok()) GTEST_SKIP() << "no usable GPU: " << device_.message(); \
  } while (0)

ModelConfig SmallConfig() { return testing::SmallTestConfig("small-cuda-test"); }

std::unique_ptr<Model> MakeModel(Backend backend, uint64_t seed = 7) {
  const ModelConfig c = SmallConfig();
  ModelOptions opts;
  opts.backend = backend;
  opts.kv_cache_blocks = 64;
  opts.block_size = 16;
  auto m = Model::Create(c, RandomWeights(c, seed), opts);
  EXPECT_OK(m);
  return m.ok() ? std::move(m).value() : nullptr;
}

using testing::ExpectNearAll;
using testing::Prompt;

std::vector<float> AsFloats(const std::vector<std::byte>& bytes) {
  std::vector<float> f(bytes.size() / sizeof(float));
  std::memcpy(f.data(), bytes.data(), f.size() * sizeof(float));
  return f;
}

int32_t Argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

std::vector<std::byte> Pack(const Model& m, SequenceId seq, int first, int count) {
  std::vector<std::byte> out(count * m.kv_cache().PackedBlockBytes());
  EXPECT_OK(m.kv_cache().PackBlocks(seq, first, count, out));
  return out;
}

// ---- a machine without a usable GPU (this build machine) ----

TEST(ModelCudaSelection, CudaWithoutGpuIsUnavailableNamingTheReason) {
  const kernels::Status device = kernels::CudaDeviceStatus();
  if (device.ok()) GTEST_SKIP() << "a GPU is present; the no-GPU behaviour is not observable";
  const ModelConfig c = SmallConfig();
  ModelOptions opts;
  opts.backend = Backend::kCuda;
  auto m = Model::Create(c, RandomWeights(c, 1), opts);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(m.status().message().find("CUDA backend requested"), std::string::npos)
      << m.status().message();
  EXPECT_NE(m.status().message().find(device.message()), std::string::npos)
      << m.status().message() << " does not name the reason: " << device.message();
}

TEST(ModelCudaSelection, AutoWithoutGpuRunsOnTheCpu) {
  const kernels::Status device = kernels::CudaDeviceStatus();
  if (device.ok()) GTEST_SKIP() << "a GPU is present; the no-GPU behaviour is not observable";
  auto autom = MakeModel(Backend::kAuto);
  auto cpu = MakeModel(Backend::kCpu);
  ASSERT_NE(autom, nullptr);
  ASSERT_NE(cpu, nullptr);
  EXPECT_EQ(autom->backend(), Backend::kCpu);
  const auto prompt = Prompt(20);
  const SequenceId a = autom->kv_cache().CreateSequence();
  const SequenceId b = cpu->kv_cache().CreateSequence();
  auto la = autom->Prefill(a, prompt);
  auto lb = cpu->Prefill(b, prompt);
  ASSERT_OK(la);
  ASSERT_OK(lb);
  EXPECT_EQ(*la, *lb);  // the same backend: bit-identical
}

// ---- a machine with a GPU ----

TEST(ModelCuda, AutoAndCudaSelectTheGpu) {
  SKIP_WITHOUT_GPU();
  auto autom = MakeModel(Backend::kAuto);
  auto gpu = MakeModel(Backend::kCuda);
  ASSERT_NE(autom, nullptr);
  ASSERT_NE(gpu, nullptr);
  EXPECT_EQ(autom->backend(), Backend::kCuda);
  EXPECT_EQ(gpu->backend(), Backend::kCuda);
}

TEST(ModelCuda, PrefillAndGreedyDecodeMatchCpu) {
  SKIP_WITHOUT_GPU();
  auto cpu = MakeModel(Backend::kCpu);
  auto gpu = MakeModel(Backend::kCuda);
  ASSERT_NE(gpu, nullptr);
  const auto prompt = Prompt(37);
  const SequenceId sc = cpu->kv_cache().CreateSequence();
  const SequenceId sg = gpu->kv_cache().CreateSequence();
  auto lc = cpu->Prefill(sc, prompt);
  auto lg = gpu->Prefill(sg, prompt);
  ASSERT_OK(lc);
  ASSERT_OK(lg);
  ExpectNearAll(*lg, *lc, kLogitTolerance);
  for (int step = 0; step < 16; ++step) {  // crosses the block boundary at 48
    const int32_t tc = Argmax(*lc), tg = Argmax(*lg);
    ASSERT_EQ(tg, tc) << "greedy token differs at step " << step;
    lc = cpu->Decode(sc, tc);
    lg = gpu->Decode(sg, tg);
    ASSERT_OK(lc);
    ASSERT_OK(lg);
    ExpectNearAll(*lg, *lc, kLogitTolerance);
  }
  EXPECT_EQ(gpu->kv_cache().NumTokens(sg), cpu->kv_cache().NumTokens(sc));
}

TEST(ModelCuda, PackedKvMatchesCpuAndUnpackRoundTripsExactly) {
  SKIP_WITHOUT_GPU();
  auto cpu = MakeModel(Backend::kCpu);
  auto gpu = MakeModel(Backend::kCuda);
  ASSERT_NE(gpu, nullptr);
  const auto prompt = Prompt(40);  // 2 full blocks of 16 and a partial one
  const SequenceId sc = cpu->kv_cache().CreateSequence();
  const SequenceId sg = gpu->kv_cache().CreateSequence();
  auto lc = cpu->Prefill(sc, prompt);
  ASSERT_OK(lc);
  ASSERT_OK(gpu->Prefill(sg, prompt));

  // The GPU path wrote its KV back into the host cache: same values as the CPU's.
  ExpectNearAll(AsFloats(Pack(*gpu, sg, 0, 3)), AsFloats(Pack(*cpu, sc, 0, 3)), kKvTolerance);

  // CPU-produced blocks unpacked into the GPU model: the tail prefill reads
  // them (synced to the device) and leaves them byte-for-byte as unpacked.
  const std::vector<std::byte> payload = Pack(*cpu, sc, 0, 2);
  const SequenceId consumer = gpu->kv_cache().CreateSequence();
  ASSERT_OK(gpu->kv_cache().UnpackBlocks(consumer, payload, 32));
  auto tail = gpu->Prefill(consumer, prompt);
  ASSERT_OK(tail);
  ExpectNearAll(*tail, *lc, kLogitTolerance);
  const std::vector<std::byte> repacked = Pack(*gpu, consumer, 0, 2);
  ASSERT_EQ(repacked.size(), payload.size());
  EXPECT_EQ(std::memcmp(repacked.data(), payload.data(), payload.size()), 0);

  // And the other way: GPU-produced blocks decode on the CPU model.
  const SequenceId cpu_consumer = cpu->kv_cache().CreateSequence();
  ASSERT_OK(cpu->kv_cache().UnpackBlocks(cpu_consumer, Pack(*gpu, sg, 0, 2), 32));
  auto cpu_tail = cpu->Prefill(cpu_consumer, prompt);
  ASSERT_OK(cpu_tail);
  ExpectNearAll(*cpu_tail, *lc, kLogitTolerance);
}

TEST(ModelCuda, DecodeBatchAndPrefixSharingMatchCpu) {
  SKIP_WITHOUT_GPU();
  auto cpu = MakeModel(Backend::kCpu);
  auto gpu = MakeModel(Backend::kCuda);
  ASSERT_NE(gpu, nullptr);
  // Sequence a publishes its two full blocks; b attaches them (shared,
  // copy-on-write) and prefills only its tail; then both decode in one batch.
  const auto prompt = Prompt(35, 3);
  const std::vector<BlockKey> keys = {"k0", "k1"};
  std::vector<std::vector<float>> batch_logits[2];
  Model* models[2] = {cpu.get(), gpu.get()};
  for (int which = 0; which < 2; ++which) {
    Model& m = *models[which];
    PagedKvCache& cache = m.kv_cache();
    const SequenceId a = cache.CreateSequence();
    ASSERT_OK(m.Prefill(a, prompt));
    ASSERT_OK(cache.PublishBlock(a, 0, keys[0]));
    ASSERT_OK(cache.PublishBlock(a, 1, keys[1]));
    const SequenceId b = cache.CreateSequence();
    ASSERT_OK(cache.AttachPrefix(b, keys));
    ASSERT_OK(m.Prefill(b, prompt));
    const SequenceId seqs[2] = {a, b};
    const int32_t toks[2] = {17, 99};
    auto out = m.DecodeBatch(seqs, toks);
    ASSERT_OK(out);
    batch_logits[which] = std::move(out).value();
  }
  ASSERT_EQ(batch_logits[1].size(), 2u);
  for (int i = 0; i < 2; ++i)
    ExpectNearAll(batch_logits[1][i], batch_logits[0][i], kLogitTolerance);
}

}  // namespace
}  // namespace kvstore::engine
