// Loading and saving Hugging Face Llama checkpoints: a directory with
// config.json and one or more *.safetensors files using the standard names
// (model.embed_tokens.weight, model.layers.N.self_attn.q_proj.weight, ...).
// Tensors in F32, F16 or BF16 are converted to fp32.
//
// Errors: NotFound for a missing directory, config.json or tensor;
// InvalidArgument for a wrong shape, an unsupported dtype or a malformed file.
//
// Thread-safety: free functions with no shared state.
#pragma once

#include <string>

#include "kvstore/engine/model_config.h"
#include "kvstore/engine/model_weights.h"
#include "kvstore/engine/safetensors.h"
#include "kvstore/status.h"

namespace kvstore::engine {

struct LoadedModel {
  ModelConfig config;
  ModelWeights weights;
};

Result<LoadedModel> LoadHfCheckpoint(const std::string& dir);

// Writes config.json and model.safetensors (tensors in dtype) to dir, which
// must exist. The inverse of LoadHfCheckpoint, up to dtype rounding.
Status SaveHfCheckpoint(const std::string& dir, const ModelConfig& config,
                        const ModelWeights& weights, DType dtype);

}  // namespace kvstore::engine
