// Checkpoint configs honoured or refused: RoPE scaling (linear, llama3)
// against float64 references, eos_token_id lists, and every field or tensor
// the model does not implement refused at load with its name.
#include <gtest/gtest.h>

#include "status_matchers.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "kvstore/engine/model.h"
#include "kvstore/engine/weights_loader.h"
#include "kvstore/kernels/cpu_ops.h"
#include "reference_model.h"

namespace kvstore::engine {
namespace {

namespace fs = std::filesystem;
using testing::ReferenceInvFreq;
using testing::ReferenceLogits;
using testing::SmallTestConfig;

ModelConfig Llama31Rope() {
  ModelConfig c;
  c.head_dim = 128;
  c.rope_theta = 500000.0f;
  c.rope_scaling = kernels::RopeScaling::kLlama3;
  c.rope_factor = 8;
  c.rope_low_freq_factor = 1;
  c.rope_high_freq_factor = 4;
  c.rope_original_max_position = 8192;
  return c;
}

TEST(RopeScaling, Llama3InvFreqMatchesTheFloat64FormulaInEveryBand) {
  const ModelConfig c = Llama31Rope();
  int kept = 0, divided = 0, blended = 0;
  for (int i = 0; i < c.head_dim / 2; ++i) {
    const double unscaled = std::pow(double(c.rope_theta), -2.0 * i / c.head_dim);
    const double want = ReferenceInvFreq(c, i);
    const double got = kernels::RopeInvFreq(i, c.head_dim, RopeParamsOf(c));
    EXPECT_NEAR(got / want, 1.0, 1e-5) << "pair " << i;
    const double ratio = want / unscaled;
    if (std::abs(ratio - 1) < 1e-9)
      ++kept;
    else if (std::abs(ratio - 1.0 / 8) < 1e-9)
      ++divided;
    else
      ++blended;
  }
  // Llama-3.1's parameters put pairs in all three bands.
  EXPECT_GT(kept, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(blended, 0);
}

TEST(RopeScaling, LinearDividesEveryFrequency) {
  ModelConfig c;
  c.head_dim = 64;
  c.rope_scaling = kernels::RopeScaling::kLinear;
  c.rope_factor = 4;
  for (int i = 0; i < 32; ++i) {
    EXPECT_NEAR(kernels::RopeInvFreq(i, 64, RopeParamsOf(c)) / ReferenceInvFreq(c, i), 1.0, 1e-5);
    EXPECT_NEAR(ReferenceInvFreq(c, i) * 4, std::pow(10000.0, -2.0 * i / 64), 1e-12);
  }
}

TEST(RopeScaling, RopeCpuRotatesByTheScaledAnglesUpToLongPositions) {
  const ModelConfig c = Llama31Rope();
  const int hd = c.head_dim;
  const std::vector<int32_t> pos = {0, 1, 17, 1000, 4095, 8191};
  std::vector<float> x(pos.size() * hd);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37 * double(i)) + 0.1;
  std::vector<float> y = x;
  ASSERT_OK(kernels::RopeCpu(y.data(), pos.data(), int(pos.size()), 1, hd, RopeParamsOf(c)));
  double worst_vs_unscaled = 0;
  for (size_t t = 0; t < pos.size(); ++t)
    for (int i = 0; i < hd / 2; ++i) {
      const double a = double(pos[t]) * ReferenceInvFreq(c, i);
      const double x0 = x[t * hd + i], x1 = x[t * hd + i + hd / 2];
      EXPECT_NEAR(y[t * hd + i], x0 * std::cos(a) - x1 * std::sin(a), 3e-3) << pos[t] << "/" << i;
      EXPECT_NEAR(y[t * hd + i + hd / 2], x1 * std::cos(a) + x0 * std::sin(a), 3e-3);
      const double u = double(pos[t]) * std::pow(double(c.rope_theta), -2.0 * i / hd);
      worst_vs_unscaled = std::max(worst_vs_unscaled,
                                   std::abs(y[t * hd + i] - (x0 * std::cos(u) - x1 * std::sin(u))));
    }
  EXPECT_GT(worst_vs_unscaled, 0.1);  // the scaling is not a no-op at these positions
}

// The whole model with scaled RoPE against the float64 reference.
TEST(RopeScaling, ModelMatchesTheReferenceWithLinearAndLlama3Scaling) {
  for (auto scaling : {kernels::RopeScaling::kLinear, kernels::RopeScaling::kLlama3}) {
    ModelConfig c = SmallTestConfig("rope-scaled");
    c.rope_scaling = scaling;
    c.rope_factor = 4;
    c.rope_low_freq_factor = 1;
    c.rope_high_freq_factor = 4;
    c.rope_original_max_position = 16;
    ModelWeights w = RandomWeights(c, 3);
    ModelConfig plain = c;
    plain.rope_scaling = kernels::RopeScaling::kNone;
    auto m = Model::Create(c, w, {});
    auto p = Model::Create(plain, w, {});
    ASSERT_OK(m);
    ASSERT_OK(p);
    const auto tokens = testing::Prompt(48, 5);
    auto seq = (*m)->kv_cache().CreateSequence();
    auto logits = (*m)->Prefill(seq, tokens);
    ASSERT_OK(logits);
    ASSERT_NO_FATAL_FAILURE(testing::ExpectNearAll(*logits, ReferenceLogits(c, w, tokens), 2e-3f));
    auto pseq = (*p)->kv_cache().CreateSequence();
    auto plain_logits = (*p)->Prefill(pseq, tokens);
    ASSERT_OK(plain_logits);
    float diff = 0;
    for (size_t i = 0; i < logits->size(); ++i)
      diff = std::max(diff, std::abs((*logits)[i] - (*plain_logits)[i]));
    EXPECT_GT(diff, 1e-2f) << "scaling changed nothing";
  }
}

std::string BaseConfig(const std::string& extra) {
  return R"({"vocab_size":300,"hidden_size":64,"intermediate_size":96,"num_hidden_layers":2,)"
         R"("num_attention_heads":4,"num_key_value_heads":2)" +
         extra + "}";
}

TEST(HfConfig, EosTokenIdAsIntOrList) {
  auto one = ParseHfConfig(BaseConfig(R"(,"eos_token_id":7)"));
  ASSERT_OK(one);
  EXPECT_EQ(one->eos_token_ids, (std::vector<int>{7}));
  auto list = ParseHfConfig(BaseConfig(R"(,"eos_token_id":[128001,128008,128009])"));
  ASSERT_OK(list);
  EXPECT_EQ(list->eos_token_ids, (std::vector<int>{128001, 128008, 128009}));
  EXPECT_EQ(list->eos_token_id, 128001);
  EXPECT_FALSE(ParseHfConfig(BaseConfig(R"(,"eos_token_id":[])")).ok());
}

TEST(HfConfig, RopeScalingParsedOrRefusedByName) {
  auto l3 = ParseHfConfig(
      BaseConfig(R"(,"rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,)"
                 R"("high_freq_factor":4.0,"original_max_position_embeddings":8192})"));
  ASSERT_OK(l3);
  EXPECT_EQ(l3->rope_scaling, kernels::RopeScaling::kLlama3);
  EXPECT_EQ(l3->rope_factor, 8.0f);
  EXPECT_EQ(l3->rope_original_max_position, 8192);
  auto lin = ParseHfConfig(BaseConfig(R"(,"rope_scaling":{"type":"linear","factor":2.0})"));
  ASSERT_OK(lin);
  EXPECT_EQ(lin->rope_scaling, kernels::RopeScaling::kLinear);
  auto missing = ParseHfConfig(BaseConfig(R"(,"rope_scaling":{"rope_type":"llama3","factor":8})"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("low_freq_factor"), std::string::npos);
}

TEST(HfConfig, UnsupportedFieldsAreRefusedNamingThem) {
  struct Case {
    const char* extra;
    const char* named;
  };
  for (const Case& c : {Case{R"(,"hidden_act":"gelu")", "hidden_act \"gelu\""},
                        Case{R"(,"attention_bias":true)", "attention_bias"},
                        Case{R"(,"mlp_bias":true)", "mlp_bias"},
                        Case{R"(,"rope_scaling":{"rope_type":"yarn","factor":4})", "yarn"},
                        Case{R"(,"rope_scaling":{"type":"dynamic","factor":2})", "dynamic"},
                        Case{R"(,"model_type":"qwen2")", "qwen2"},
                        Case{R"(,"quantization_config":{"bits":4})", "quantization_config"},
                        Case{R"(,"sliding_window":512)", "sliding_window"}}) {
    auto r = ParseHfConfig(BaseConfig(c.extra));
    ASSERT_FALSE(r.ok()) << c.extra;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.named), std::string::npos) << r.status().message();
  }
  EXPECT_OK(ParseHfConfig(BaseConfig(R"(,"hidden_act":"silu","attention_bias":false)")));
}

class CheckpointDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kvstore-config-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(CheckpointDir, UnexpectedTensorsAreRefusedNamingThem) {
  ModelConfig c = SmallTestConfig("extra-tensors");
  ModelWeights w = RandomWeights(c, 1);
  ASSERT_OK(SaveHfCheckpoint(dir_.string(), c, w, DType::kF32));
  ASSERT_OK(LoadHfCheckpoint(dir_.string()));
  // A buffer older checkpoints ship is fine...
  std::vector<float> inv(c.head_dim / 2, 1.0f);
  std::vector<TensorToWrite> rot = {
      {"model.layers.0.self_attn.rotary_emb.inv_freq", {c.head_dim / 2}, &inv}};
  ASSERT_OK(WriteSafetensors((dir_ / "rot.safetensors").string(), rot, DType::kF32));
  ASSERT_OK(LoadHfCheckpoint(dir_.string()));
  // ... a bias is not.
  std::vector<float> bias(c.num_heads * c.head_dim, 0.5f);
  std::vector<TensorToWrite> extra = {
      {"model.layers.1.self_attn.q_proj.bias", {c.num_heads * c.head_dim}, &bias}};
  ASSERT_OK(WriteSafetensors((dir_ / "extra.safetensors").string(), extra, DType::kF32));
  auto r = LoadHfCheckpoint(dir_.string());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("model.layers.1.self_attn.q_proj.bias"), std::string::npos)
      << r.status().message();
}

TEST_F(CheckpointDir, EosListRoundTripsAndGenerationStopsAtAnyOfThem) {
  ModelConfig c = SmallTestConfig("eos-list");
  ModelWeights w = RandomWeights(c, 2);
  auto m = Model::Create(c, w, {});
  ASSERT_OK(m);
  GenerateOptions go;
  go.max_new_tokens = 12;
  go.stop_at_eos = false;
  const auto prompt = testing::Prompt(9, 1);
  auto free_run = Generate(**m, (*m)->kv_cache().CreateSequence(), prompt, go);
  ASSERT_OK(free_run);
  // Make the 5th generated token one of two EOS ids: generation stops there.
  const int32_t stop = (*free_run)[4];
  const size_t first = std::find(free_run->begin(), free_run->end(), stop) - free_run->begin();
  int32_t other = c.vocab_size - 1;  // an EOS id this run never produces
  while (std::find(free_run->begin(), free_run->end(), other) != free_run->end()) --other;
  c.eos_token_ids = {other, stop};
  c.eos_token_id = c.eos_token_ids[0];
  ASSERT_OK(SaveHfCheckpoint(dir_.string(), c, w, DType::kF32));
  auto loaded = Model::LoadHf(dir_.string(), {});
  ASSERT_OK(loaded);
  EXPECT_EQ((*loaded)->config().eos_token_ids, c.eos_token_ids);
  go.stop_at_eos = true;
  auto stopped = Generate(**loaded, (*loaded)->kv_cache().CreateSequence(), prompt, go);
  ASSERT_OK(stopped);
  EXPECT_EQ(stopped->size(), first + 1);
  EXPECT_EQ(stopped->back(), stop);
}

}  // namespace
}  // namespace kvstore::engine
