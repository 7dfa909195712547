// A plain, obviously-correct Llama forward pass for tests: double precision,
// no cache, attention over the whole unpaged sequence, recomputed from scratch
// for every call.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kvstore/engine/model_config.h"
#include "kvstore/engine/model_weights.h"

namespace kvstore::engine::testing {

// Logits [vocab] of the last position of tokens.
std::vector<float> ReferenceLogits(const ModelConfig& c, const ModelWeights& w,
                                   std::span<const int32_t> tokens);

}  // namespace kvstore::engine::testing
