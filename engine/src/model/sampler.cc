#include "kvstore/engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "kvstore/kernels/cpu_ops.h"

namespace kvstore::engine {

Sampler::Sampler(const SamplingParams& params)
    : params_(params), state_(params.seed ^ 0x6a09e667f3bcc909ULL) {}

double Sampler::NextUniform() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);  // splitmix64
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * (1.0 / 9007199254740992.0);  // 53 bits
}

int32_t Sampler::Sample(std::span<const float> logits) {
  const int vocab = static_cast<int>(logits.size());
  if (params_.temperature <= 0.0f) {
    int32_t best = 0;
    (void)kernels::ArgmaxCpu(logits.data(), &best, 1, vocab);
    return best;
  }
  std::vector<int32_t> ids(vocab);
  std::iota(ids.begin(), ids.end(), 0);
  auto before = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  int k = params_.top_k > 0 && params_.top_k < vocab ? params_.top_k : vocab;
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), before);
  ids.resize(k);
  // Softmax in double over the kept ids, in sorted order, then invert the CDF.
  const double max_logit = logits[ids[0]];
  std::vector<double> p(k);
  double sum = 0.0;
  for (int i = 0; i < k; ++i) {
    p[i] = std::exp((static_cast<double>(logits[ids[i]]) - max_logit) / params_.temperature);
    sum += p[i];
  }
  if (params_.top_p < 1.0f) {  // p is in descending order
    const double keep = static_cast<double>(params_.top_p) * sum;
    double acc = 0.0;
    int n = 0;
    while (n < k && acc < keep) acc += p[n++];
    k = std::max(n, 1);
    sum = 0.0;
    for (int i = 0; i < k; ++i) sum += p[i];
  }
  const double u = NextUniform() * sum;
  double acc = 0.0;
  for (int i = 0; i < k; ++i) {
    acc += p[i];
    if (u < acc) return ids[i];
  }
  return ids[k - 1];
}

}  // namespace kvstore::engine
