// The model end to end on the CPU backend: against the unpaged reference,
// determinism, tail prefill after unpacked blocks, batching, threading.
#include "kvstore/engine/model.h"

#include <gtest/gtest.h>

#include "status_matchers.h"

#include <cmath>

#include "kvstore/engine/tokenizer.h"
#include "kvstore/kernels/device.h"
#include "reference_model.h"

namespace kvstore::engine {
namespace {

using testing::ReferenceLogits;

// Logits of the paged model and of the reference agree to this absolute
// tolerance (fp32 vs double through a few layers; logits are O(1..10)).
constexpr float kRefTolerance = 2e-3f;

ModelConfig SmallConfig() { return testing::SmallTestConfig("small-test"); }

std::unique_ptr<Model> MakeModel(const ModelConfig& c, uint64_t seed, ModelOptions opts = {}) {
  opts.backend = Backend::kCpu;
  if (opts.kv_cache_blocks == ModelOptions{}.kv_cache_blocks) opts.kv_cache_blocks = 64;
  auto m = Model::Create(c, RandomWeights(c, seed), opts);
  EXPECT_OK(m);
  return std::move(m).value();
}

using testing::ExpectNearAll;
using testing::Prompt;

int Argmax(const std::vector<float>& v) {
  return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}

TEST(Model, BuiltinConfigAndLayout) {
  auto m = Model::CreateBuiltin(1, ModelOptions{});
  ASSERT_OK(m);
  // kAuto runs on the GPU when one is usable (model_cuda_test.cc), else on the CPU.
  EXPECT_EQ((*m)->backend(), kernels::CudaDeviceStatus().ok() ? Backend::kCuda : Backend::kCpu);
  EXPECT_EQ((*m)->KvLayout(), "llama/f32/L4/kv2/d32/b16/v1");
  EXPECT_EQ((*m)->config().vocab_size, ByteTokenizer::kVocabSize);
  EXPECT_EQ((*m)->kv_cache().PackedBlockBytes(), size_t(4 * 2 * 16 * 2 * 32 * 4));
}

TEST(Model, CudaBackendRequestedWithoutGpuIsUnavailable) {
  if (kernels::CudaDeviceStatus().ok()) GTEST_SKIP() << "a GPU is present";
  ModelOptions opts;
  opts.backend = Backend::kCuda;
  auto m = Model::CreateBuiltin(1, opts);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kUnavailable);
}

TEST(Model, PagedPrefillAndDecodeMatchUnpagedReference) {
  const ModelConfig c = SmallConfig();
  auto m = MakeModel(c, 7);
  std::vector<int32_t> tokens = Prompt(37);
  const SequenceId seq = m->kv_cache().CreateSequence();
  auto logits = m->Prefill(seq, tokens);
  ASSERT_OK(logits);
  for (int step = 0; step < 12; ++step) {  // crosses the block boundary at 48
    auto ref = ReferenceLogits(c, m->weights(), tokens);
    ExpectNearAll(*logits, ref, kRefTolerance);
    EXPECT_EQ(Argmax(*logits), Argmax(ref)) << "step " << step;
    const int32_t next = Argmax(*logits);
    tokens.push_back(next);
    logits = m->Decode(seq, next);
    ASSERT_OK(logits);
  }
  EXPECT_EQ(m->kv_cache().NumTokens(seq), 49);
}

TEST(Model, BuiltinModelMatchesReferenceOnAShortPrompt) {
  auto m = Model::CreateBuiltin(3, ModelOptions{});
  ASSERT_OK(m);
  auto tokens = ByteTokenizer::Encode("paged attention!");
  const SequenceId seq = (*m)->kv_cache().CreateSequence();
  auto logits = (*m)->Prefill(seq, tokens);
  ASSERT_OK(logits);
  ExpectNearAll(*logits, ReferenceLogits((*m)->config(), (*m)->weights(), tokens), kRefTolerance);
}

TEST(Model, SamePromptSeedAndBackendGiveTheSameTokens) {
  const auto prompt = ByteTokenizer::Encode("The quick brown fox jumps over the lazy dog.");
  for (float temperature : {0.0f, 0.9f}) {
    std::vector<int32_t> runs[2];
    for (auto& run : runs) {
      auto m = Model::CreateBuiltin(42, ModelOptions{});
      ASSERT_OK(m);
      GenerateOptions g;
      g.max_new_tokens = 24;
      g.stop_at_eos = false;
      g.sampling = {temperature, 40, 1234};
      auto out = Generate(**m, (*m)->kv_cache().CreateSequence(), prompt, g);
      ASSERT_OK(out);
      run = *out;
    }
    EXPECT_EQ(runs[0], runs[1]) << "temperature " << temperature;
    EXPECT_EQ(runs[0].size(), 24u);
  }
}

TEST(Model, ThreadedForwardIsBitIdentical) {
  const auto prompt = Prompt(40);
  std::vector<float> out[2];
  for (int threads : {1, 2}) {
    ModelOptions o;
    o.num_threads = threads;
    auto m = MakeModel(TinyConfig(), 5, o);
    const SequenceId seq = m->kv_cache().CreateSequence();
    ASSERT_OK(m->Prefill(seq, prompt));
    auto l = m->Decode(seq, 65);
    ASSERT_OK(l);
    out[threads - 1] = *l;
  }
  EXPECT_EQ(out[0], out[1]);
}

// The decode side's path: the first k full blocks arrive packed from the
// store, only the tail is computed.
TEST(Model, PrefillOfTailAfterUnpackedBlocksEqualsFullPrefill) {
  const ModelConfig c = SmallConfig();
  auto producer = MakeModel(c, 9);
  auto consumer = MakeModel(c, 9);
  const int bs = producer->kv_cache().block_size();
  for (int n : {16, 17, 20, 32, 37, 48}) {
    const auto tokens = Prompt(n, n);
    const SequenceId ps = producer->kv_cache().CreateSequence();
    auto full = producer->Prefill(ps, tokens);
    ASSERT_OK(full);
    for (int k = 0; k * bs <= n; ++k) {
      // Occupy a block first so the consumer's block ids differ from the producer's.
      const SequenceId filler = consumer->kv_cache().CreateSequence();
      ASSERT_OK(consumer->Prefill(filler, Prompt(3)));
      const SequenceId cs = consumer->kv_cache().CreateSequence();
      if (k > 0) {
        std::vector<std::byte> payload(k * producer->kv_cache().PackedBlockBytes());
        ASSERT_OK(producer->kv_cache().PackBlocks(ps, 0, k, payload));
        ASSERT_OK(consumer->kv_cache().UnpackBlocks(cs, payload, k * bs));
      }
      auto tail = consumer->Prefill(cs, tokens);
      ASSERT_OK(tail);
      // Same arithmetic per row whatever the batch: exact, not just close.
      EXPECT_EQ(*tail, *full) << "n=" << n << " k=" << k;
      // And decoding continues identically.
      auto a = producer->Decode(ps, 100), b = consumer->Decode(cs, 100);
      ASSERT_OK(a);
      ASSERT_OK(b);
      EXPECT_EQ(*a, *b) << "n=" << n << " k=" << k;
      ASSERT_OK(producer->kv_cache().SetNumTokens(ps, n));  // undo the decode
      ASSERT_OK(consumer->kv_cache().FreeSequence(cs));
      ASSERT_OK(consumer->kv_cache().FreeSequence(filler));
    }
    ASSERT_OK(producer->kv_cache().FreeSequence(ps));
  }
}

TEST(Model, DecodeBatchEqualsSeparateDecodes) {
  auto m = MakeModel(SmallConfig(), 11);
  std::vector<SequenceId> seqs;
  std::vector<int32_t> next;
  std::vector<std::vector<float>> single;
  for (int i = 0; i < 3; ++i) {
    const SequenceId s = m->kv_cache().CreateSequence();
    ASSERT_OK(m->Prefill(s, Prompt(5 + 14 * i, i)));
    seqs.push_back(s);
    next.push_back(60 + i);
  }
  for (int i = 0; i < 3; ++i) {
    auto l = m->Decode(seqs[i], next[i]);
    ASSERT_OK(l);
    single.push_back(*l);
    ASSERT_OK(m->kv_cache().SetNumTokens(seqs[i], m->kv_cache().NumTokens(seqs[i]) - 1));
  }
  auto batch = m->DecodeBatch(seqs, next);
  ASSERT_OK(batch);
  for (int i = 0; i < 3; ++i) EXPECT_EQ((*batch)[i], single[i]) << i;
}

TEST(Model, PrefixSharingReusesPublishedBlocks) {
  auto m = MakeModel(SmallConfig(), 13);
  PagedKvCache& cache = m->kv_cache();
  const auto tokens = Prompt(40);
  const SequenceId a = cache.CreateSequence();
  auto la = m->Prefill(a, tokens);
  ASSERT_OK(la);
  const std::vector<BlockKey> keys = {"k0", "k1"};
  ASSERT_OK(cache.PublishBlock(a, 0, keys[0]));
  ASSERT_OK(cache.PublishBlock(a, 1, keys[1]));
  EXPECT_FALSE(cache.PublishBlock(a, 2, "k2").ok());  // partial block
  ASSERT_OK(cache.FreeSequence(a));                   // published blocks stay cached
  EXPECT_EQ(cache.MatchPrefix(keys), 2);
  const SequenceId b = cache.CreateSequence();
  ASSERT_OK(cache.AttachPrefix(b, keys));
  EXPECT_EQ(cache.NumTokens(b), 32);
  auto lb = m->Prefill(b, tokens);
  ASSERT_OK(lb);
  EXPECT_EQ(*lb, *la);
}

TEST(Model, RejectsBadInput) {
  ModelOptions o;
  o.kv_cache_blocks = 2;
  auto m = MakeModel(SmallConfig(), 1, o);
  const SequenceId s = m->kv_cache().CreateSequence();
  const std::vector<int32_t> bad = {1, 258};
  EXPECT_EQ(m->Prefill(s, bad).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m->Prefill(s, {}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m->Prefill(s, Prompt(40)).status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(m->kv_cache().NumTokens(s), 0);
  ASSERT_OK(m->Prefill(s, Prompt(20)));
  EXPECT_EQ(m->Prefill(s, Prompt(10)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m->Decode(999, 1).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace kvstore::engine
