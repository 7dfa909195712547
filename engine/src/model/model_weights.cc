#include "kvstore/engine/model_weights.h"

#include <cmath>

namespace kvstore::engine {
namespace {

// splitmix64: tiny, fast, and the same everywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [-1, 1).
  float Symmetric() { return static_cast<float>((Next() >> 40) * (1.0 / (1ULL << 23)) - 1.0); }

 private:
  uint64_t state_;
};

std::vector<float> Uniform(Rng& rng, size_t n, float amplitude) {
  std::vector<float> v(n);
  for (auto& x : v) x = rng.Symmetric() * amplitude;
  return v;
}

std::vector<float> NearOne(Rng& rng, size_t n) {
  std::vector<float> v(n);
  for (auto& x : v) x = 1.0f + 0.1f * rng.Symmetric();
  return v;
}

// Uniform on [-a, a] has variance a^2 / 3: a = sqrt(3 / fan_in) keeps unit scale.
float Amplitude(int fan_in) { return std::sqrt(3.0f / static_cast<float>(fan_in)); }

}  // namespace

ModelWeights RandomWeights(const ModelConfig& c, uint64_t seed) {
  Rng rng(seed);
  const size_t h = c.hidden_size, q = size_t(c.num_heads) * c.head_dim,
               kv = size_t(c.num_kv_heads) * c.head_dim, f = c.intermediate_size;
  ModelWeights w;
  w.embed = Uniform(rng, size_t(c.vocab_size) * h, 1.0f);
  w.layers.resize(c.num_layers);
  for (auto& l : w.layers) {
    l.attn_norm = NearOne(rng, h);
    l.wq = Uniform(rng, q * h, Amplitude(c.hidden_size));
    l.wk = Uniform(rng, kv * h, Amplitude(c.hidden_size));
    l.wv = Uniform(rng, kv * h, Amplitude(c.hidden_size));
    l.wo = Uniform(rng, h * q, Amplitude(static_cast<int>(q)));
    l.mlp_norm = NearOne(rng, h);
    l.w_gate = Uniform(rng, f * h, Amplitude(c.hidden_size));
    l.w_up = Uniform(rng, f * h, Amplitude(c.hidden_size));
    l.w_down = Uniform(rng, h * f, Amplitude(c.intermediate_size));
  }
  w.final_norm = NearOne(rng, h);
  w.lm_head = c.tie_word_embeddings
                  ? w.embed
                  : Uniform(rng, size_t(c.vocab_size) * h, Amplitude(c.hidden_size));
  return w;
}

Status CheckWeightShapes(const ModelConfig& c, const ModelWeights& w) {
  const size_t h = c.hidden_size, q = size_t(c.num_heads) * c.head_dim,
               kv = size_t(c.num_kv_heads) * c.head_dim, f = c.intermediate_size, v = c.vocab_size;
  auto check = [](const std::vector<float>& a, size_t n, const std::string& what) {
    if (a.size() == n) return Status::Ok();
    return Status::InvalidArgument("weights: " + what + " has " + std::to_string(a.size()) +
                                   " values, expected " + std::to_string(n));
  };
  KVSTORE_RETURN_IF_ERROR(check(w.embed, v * h, "embed"));
  if (w.layers.size() != size_t(c.num_layers))
    return Status::InvalidArgument("weights: " + std::to_string(w.layers.size()) +
                                   " layers, expected " + std::to_string(c.num_layers));
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const auto& l = w.layers[i];
    const std::string p = "layer " + std::to_string(i) + " ";
    KVSTORE_RETURN_IF_ERROR(check(l.attn_norm, h, p + "attn_norm"));
    KVSTORE_RETURN_IF_ERROR(check(l.wq, q * h, p + "wq"));
    KVSTORE_RETURN_IF_ERROR(check(l.wk, kv * h, p + "wk"));
    KVSTORE_RETURN_IF_ERROR(check(l.wv, kv * h, p + "wv"));
    KVSTORE_RETURN_IF_ERROR(check(l.wo, h * q, p + "wo"));
    KVSTORE_RETURN_IF_ERROR(check(l.mlp_norm, h, p + "mlp_norm"));
    KVSTORE_RETURN_IF_ERROR(check(l.w_gate, f * h, p + "w_gate"));
    KVSTORE_RETURN_IF_ERROR(check(l.w_up, f * h, p + "w_up"));
    KVSTORE_RETURN_IF_ERROR(check(l.w_down, h * f, p + "w_down"));
  }
  KVSTORE_RETURN_IF_ERROR(check(w.final_norm, h, "final_norm"));
  return check(w.lm_head, v * h, "lm_head");
}

}  // namespace kvstore::engine
