#include <gtest/gtest.h>

#include "status_matchers.h"

#include <map>

#include "kvstore/engine/model_config.h"
#include "kvstore/engine/sampler.h"
#include "kvstore/engine/tokenizer.h"

namespace kvstore::engine {
namespace {

TEST(ByteTokenizer, RoundTripsAnyBytes) {
  std::string text = "héllo\n\0wörld";
  text.push_back('\xff');
  auto ids = ByteTokenizer::Encode(text);
  ASSERT_EQ(ids.front(), ByteTokenizer::kBos);
  EXPECT_EQ(ids.size(), text.size() + 1);
  ids.push_back(ByteTokenizer::kEos);
  EXPECT_EQ(ByteTokenizer::Decode(ids), text);
  EXPECT_EQ(ByteTokenizer::Encode("ab", false), (std::vector<int32_t>{'a', 'b'}));
}

TEST(Sampler, GreedyPicksArgmaxSmallestIndexOnTies) {
  Sampler s({});
  const std::vector<float> logits = {0.1f, 3.0f, -2.0f, 3.0f};
  EXPECT_EQ(s.Sample(logits), 1);
}

TEST(Sampler, SeededSamplingIsReproducibleAndRespectsTopK) {
  std::vector<float> logits(50);
  for (int i = 0; i < 50; ++i) logits[i] = 0.1f * i;
  SamplingParams p{1.0f, 5, 77};
  Sampler a(p), b(p);
  std::map<int, int> counts;
  for (int i = 0; i < 500; ++i) {
    const int x = a.Sample(logits);
    EXPECT_EQ(x, b.Sample(logits));
    EXPECT_GE(x, 45);  // only the top 5
    ++counts[x];
  }
  EXPECT_EQ(counts.size(), 5u);
  EXPECT_GT(counts[49], counts[45]);
  Sampler c({1.0f, 5, 78});
  int differ = 0;
  Sampler a2(p);
  for (int i = 0; i < 50; ++i) differ += a2.Sample(logits) != c.Sample(logits);
  EXPECT_GT(differ, 0);
}

TEST(Sampler, TopPKeepsTheSmallestSetReachingP) {
  // Probabilities about 0.018, 0.018, 0.964 (temperature 1).
  const std::vector<float> logits = {0.0f, 0.0f, 4.0f};
  SamplingParams nucleus{1.0f, 0, 3};
  nucleus.top_p = 0.9f;  // the top token alone reaches 0.9
  SamplingParams all{1.0f, 0, 3};
  Sampler n(nucleus), a(all);
  int others = 0;
  for (int i = 0; i < 400; ++i) {
    EXPECT_EQ(n.Sample(logits), 2);
    others += a.Sample(logits) != 2;
  }
  EXPECT_GT(others, 0);  // without the cut the tail is drawn sometimes
}

TEST(Sampler, LowTemperatureIsNearlyGreedy) {
  std::vector<float> logits = {0.0f, 1.0f, 5.0f, 2.0f};
  Sampler s({0.01f, 0, 1});
  for (int i = 0; i < 100; ++i) EXPECT_EQ(s.Sample(logits), 2);
}

TEST(ModelConfig, ParsesHfConfigAndNamesTheLayout) {
  auto c = ParseHfConfig(R"({"vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "model_type": "llama"})");
  ASSERT_OK(c);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->num_kv_heads, 8);
  EXPECT_FLOAT_EQ(c->rope_theta, 500000.0f);
  EXPECT_EQ(KvLayoutString(*c, 16), "llama/f32/L32/kv8/d128/b16/v1");
  EXPECT_EQ(ParseHfConfig("{}").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseHfConfig("not json").status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(ParseHfConfig(R"({"vocab_size": 10, "hidden_size": 12, "intermediate_size": 8,
    "num_hidden_layers": 1, "num_attention_heads": 3, "num_key_value_heads": 2})")
                   .ok());  // 3 heads over 2 KV heads
}

}  // namespace
}  // namespace kvstore::engine
