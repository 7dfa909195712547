// ModelConfig: the hyper-parameters of a Llama-architecture model, and the KV
// layout string that names its cache in the store's key namespace.
//
// Thread-safety: a value.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kvstore/kernels/host_device.h"
#include "kvstore/status.h"

namespace kvstore::engine {

struct ModelConfig {
  std::string name = "tiny-llama";  // goes into logs and the key namespace
  int vocab_size = 258;             // byte-level: 256 bytes + BOS + EOS
  int hidden_size = 256;            // d_model
  int intermediate_size = 768;      // SwiGLU width
  int num_layers = 4;
  int num_heads = 8;
  int num_kv_heads = 2;  // grouped-query attention
  int head_dim = 32;     // hidden_size / num_heads unless set
  float rms_norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  // rope_scaling: none, "linear" (factor) or "llama3" (factor, low/high_freq_factor,
  // original_max_position_embeddings); see kernels::RopeInvFreq.
  kernels::RopeScaling rope_scaling = kernels::RopeScaling::kNone;
  float rope_factor = 1.0f;
  float rope_low_freq_factor = 1.0f;
  float rope_high_freq_factor = 4.0f;
  int rope_original_max_position = 8192;
  int max_position_embeddings = 4096;
  bool tie_word_embeddings = false;  // lm_head shares the embedding table
  int bos_token_id = 256;
  int eos_token_id = 257;                  // the first of eos_token_ids
  std::vector<int> eos_token_ids = {257};  // generation stops at any of them

  // InvalidArgument naming the first inconsistent field.
  Status Validate() const;
};

// The built-in tiny model: 4 layers, d_model 256, 8 heads, 2 KV heads, head
// dim 32, byte-level vocabulary. Runs with seeded random weights.
ModelConfig TinyConfig();

// The RoPE parameters the kernels take.
kernels::RopeParams RopeParamsOf(const ModelConfig& config);

// Parses a Hugging Face config.json (LlamaForCausalLM and look-alikes).
// eos_token_id may be an int or a list. Refused (InvalidArgument naming the
// field) rather than ignored: hidden_act other than silu, attention_bias or
// mlp_bias true, a rope_scaling other than linear/llama3/default, a
// quantization_config, a sliding_window shorter than the context, a
// model_type other than llama/mistral.
Result<ModelConfig> ParseHfConfig(std::string_view json_text);

// Version of the packed KV block layout; bump it when the payload changes.
inline constexpr int kKvLayoutVersion = 1;

// Names the packed KV payload for the store's key namespace, e.g.
// "llama/f32/L4/kv2/d32/b16/v1": architecture, cache dtype, layers, KV heads,
// head dim, block size, layout version. Two caches with the same string can
// exchange blocks byte for byte.
std::string KvLayoutString(const ModelConfig& config, int block_size);

}  // namespace kvstore::engine
