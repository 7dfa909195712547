// ModelWeights: a Llama model's parameters as fp32 host arrays in the Hugging
// Face layout (linear weights are [out_features, in_features]).
//
// Thread-safety: a value; read-only sharing across threads is safe.
#pragma once

#include <cstdint>
#include <vector>

#include "kvstore/engine/model_config.h"
#include "kvstore/status.h"

namespace kvstore::engine {

struct LayerWeights {
  std::vector<float> attn_norm;  // [hidden]
  std::vector<float> wq;         // [num_heads * head_dim, hidden]
  std::vector<float> wk;         // [num_kv_heads * head_dim, hidden]
  std::vector<float> wv;         // [num_kv_heads * head_dim, hidden]
  std::vector<float> wo;         // [hidden, num_heads * head_dim]
  std::vector<float> mlp_norm;   // [hidden]
  std::vector<float> w_gate;     // [intermediate, hidden]
  std::vector<float> w_up;       // [intermediate, hidden]
  std::vector<float> w_down;     // [hidden, intermediate]
};

struct ModelWeights {
  std::vector<float> embed;  // [vocab, hidden]
  std::vector<LayerWeights> layers;
  std::vector<float> final_norm;  // [hidden]
  std::vector<float> lm_head;     // [vocab, hidden]; a copy of embed when tied
};

// Seeded random weights: the same config and seed give the same bits on every
// machine (own generator, no std distributions). Linear weights are uniform
// with unit output variance; norm weights are near 1.
ModelWeights RandomWeights(const ModelConfig& config, uint64_t seed);

// InvalidArgument naming the first array whose size does not fit config.
Status CheckWeightShapes(const ModelConfig& config, const ModelWeights& weights);

}  // namespace kvstore::engine
