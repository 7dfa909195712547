// Sampler: picks the next token from logits. Greedy when temperature is 0;
// otherwise softmax(logits / temperature) over the top_k largest logits
// (all when top_k is 0), then cut to the smallest set of most likely tokens
// whose probability reaches top_p (nucleus sampling; 1 keeps all), drawn
// from a generator seeded with seed. The same
// params and logits give the same tokens on every machine (own generator,
// ties broken by the smaller token id).
//
// Thread-safety: not thread-safe (the generator has state); one per sequence.
#pragma once

#include <cstdint>
#include <span>

namespace kvstore::engine {

struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy
  int top_k = 0;             // 0: no cut
  float top_p = 1.0f;        // (0, 1]; 1: no cut
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // REQUIRES: logits is not empty.
  int32_t Sample(std::span<const float> logits);

 private:
  double NextUniform();  // [0, 1)

  SamplingParams params_;
  uint64_t state_;
};

}  // namespace kvstore::engine
