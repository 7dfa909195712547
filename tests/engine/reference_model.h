// A plain, obviously-correct Llama forward pass for tests: double precision,
// no cache, attention over the whole unpaged sequence, recomputed from scratch
// for every call.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <span>
#include <vector>

#include "kvstore/engine/model_config.h"
#include "kvstore/engine/model_weights.h"

namespace kvstore::engine::testing {

// A model small enough for exact comparisons in tests: 2 layers, grouped-query
// attention (4 heads over 2 KV heads), head_dim 16.
inline ModelConfig SmallTestConfig(const char* name) {
  ModelConfig c;
  c.name = name;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  return c;
}

// A deterministic prompt of n byte-vocabulary tokens; `salt` varies it.
inline std::vector<int32_t> Prompt(int n, int salt = 0) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back((i * 37 + salt * 11 + 5) % 256);
  return t;
}

// Every element of a within tol of b (use inside ASSERT_NO_FATAL_FAILURE).
inline void ExpectNearAll(const std::vector<float>& a, const std::vector<float>& b, float tol) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], tol) << "element " << i;
}

// The RoPE inverse frequency of pair i in float64, by transformers' formulas
// for rope_scaling none / linear / llama3 (written out here, not the kernel's).
double ReferenceInvFreq(const ModelConfig& c, int i);

// Logits [vocab] of the last position of tokens.
std::vector<float> ReferenceLogits(const ModelConfig& c, const ModelWeights& w,
                                   std::span<const int32_t> tokens);

}  // namespace kvstore::engine::testing
