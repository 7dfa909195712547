// Model creation, backend selection, and the Prefill / Decode / Generate
// entry points. The forward pass itself is in model_forward.cc.
#include "kvstore/engine/model.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "cuda_forward.h"
#include "kernel_status.h"
#include "kvstore/engine/weights_loader.h"
#include "kvstore/kernels/device.h"

namespace kvstore::engine {

std::string_view BackendName(Backend backend) {
  switch (backend) {
    case Backend::kAuto:
      return "auto";
    case Backend::kCpu:
      return "cpu";
    case Backend::kCuda:
      return "cuda";
  }
  return "?";
}

Model::Model(ModelConfig config, ModelWeights weights, const ModelOptions& options, Backend backend)
    : config_(std::move(config)),
      weights_(std::move(weights)),
      options_(options),
      backend_(backend),
      cache_(kernels::KvCacheShape{config_.num_layers, options.kv_cache_blocks, options.block_size,
                                   config_.num_kv_heads, config_.head_dim}),
      pool_(options.num_threads) {}

Model::~Model() = default;

Result<std::unique_ptr<Model>> Model::Create(ModelConfig config, ModelWeights weights,
                                             const ModelOptions& options) {
  KVSTORE_RETURN_IF_ERROR(config.Validate());
  KVSTORE_RETURN_IF_ERROR(CheckWeightShapes(config, weights));
  if (options.num_threads < 1 || options.kv_cache_blocks < 1 || options.block_size < 1)
    return Status::InvalidArgument(
        "model options: num_threads, kv_cache_blocks and block_size must be positive");
  const kernels::KvCacheShape shape{config.num_layers, options.kv_cache_blocks, options.block_size,
                                    config.num_kv_heads, config.head_dim};
  Backend backend = Backend::kCpu;
  std::unique_ptr<CudaForward> gpu;
  if (options.backend != Backend::kCpu) {
    const kernels::Status device = kernels::CudaDeviceStatus();
    if (!device.ok()) {
      if (options.backend == Backend::kCuda)
        return FromKernelStatus(device, "model: CUDA backend requested");
      spdlog::info("model {}: no usable GPU ({}); using the CPU backend", config.name,
                   device.message());
    } else {
      auto made = CreateCudaForward(config, weights, shape);
      if (made.ok()) {
        gpu = std::move(made).value();
        backend = Backend::kCuda;
        spdlog::info("model {}: weights on the GPU; using the CUDA backend", config.name);
      } else if (options.backend == Backend::kCuda) {
        return Status(made.status().code(),
                      "model: CUDA backend requested: " + made.status().message());
      } else {
        spdlog::warn(
            "model {}: a GPU is present but the CUDA backend failed to start ({}); "
            "using the CPU backend",
            config.name, made.status().message());
      }
    }
  }
  auto model =
      std::unique_ptr<Model>(new Model(std::move(config), std::move(weights), options, backend));
  model->gpu_ = std::move(gpu);
  return model;
}

Result<std::unique_ptr<Model>> Model::CreateBuiltin(uint64_t seed, const ModelOptions& options) {
  ModelConfig config = TinyConfig();
  ModelWeights weights = RandomWeights(config, seed);
  return Create(std::move(config), std::move(weights), options);
}

Result<std::unique_ptr<Model>> Model::LoadHf(const std::string& dir, const ModelOptions& options) {
  KVSTORE_ASSIGN_OR_RETURN(LoadedModel loaded, LoadHfCheckpoint(dir));
  return Create(std::move(loaded.config), std::move(loaded.weights), options);
}

std::string Model::KvLayout() const { return KvLayoutString(config_, options_.block_size); }

Result<std::vector<float>> Model::Prefill(SequenceId seq, std::span<const int32_t> tokens) {
  if (!cache_.HasSequence(seq))
    return Status::NotFound("prefill: no sequence " + std::to_string(seq));
  const int n = static_cast<int>(tokens.size());
  if (n == 0) return Status::InvalidArgument("prefill: empty prompt");
  int cached = cache_.NumTokens(seq);
  if (cached > n)
    return Status::InvalidArgument("prefill: the cache holds " + std::to_string(cached) +
                                   " tokens of a " + std::to_string(n) + "-token prompt");
  if (cached == n) {  // nothing to compute, but the last logits are needed
    KVSTORE_RETURN_IF_ERROR(cache_.SetNumTokens(seq, n - 1));
    cached = n - 1;
  }
  const BatchItem item{seq, tokens.subspan(cached), cached};
  KVSTORE_ASSIGN_OR_RETURN(auto logits, Forward(std::span<const BatchItem>(&item, 1)));
  return std::move(logits[0]);
}

Result<std::vector<float>> Model::Decode(SequenceId seq, int32_t token) {
  if (!cache_.HasSequence(seq))
    return Status::NotFound("decode: no sequence " + std::to_string(seq));
  const BatchItem item{seq, std::span<const int32_t>(&token, 1), cache_.NumTokens(seq)};
  KVSTORE_ASSIGN_OR_RETURN(auto logits, Forward(std::span<const BatchItem>(&item, 1)));
  return std::move(logits[0]);
}

Result<std::vector<std::vector<float>>> Model::DecodeBatch(std::span<const SequenceId> seqs,
                                                           std::span<const int32_t> tokens) {
  if (seqs.size() != tokens.size())
    return Status::InvalidArgument("decode batch: sequences and tokens differ in number");
  std::vector<BatchItem> items;
  for (size_t i = 0; i < seqs.size(); ++i) {
    if (!cache_.HasSequence(seqs[i]))
      return Status::NotFound("decode batch: no sequence " + std::to_string(seqs[i]));
    for (size_t j = 0; j < i; ++j)
      if (seqs[j] == seqs[i]) return Status::InvalidArgument("decode batch: sequence listed twice");
    items.push_back({seqs[i], tokens.subspan(i, 1), cache_.NumTokens(seqs[i])});
  }
  return Forward(items);
}

Result<std::vector<std::vector<float>>> Model::Step(std::span<const StepItem> items) {
  std::vector<BatchItem> batch;
  for (size_t i = 0; i < items.size(); ++i) {
    if (!cache_.HasSequence(items[i].seq))
      return Status::NotFound("step: no sequence " + std::to_string(items[i].seq));
    for (size_t j = 0; j < i; ++j)
      if (items[j].seq == items[i].seq)
        return Status::InvalidArgument("step: sequence listed twice");
    batch.push_back({items[i].seq, items[i].tokens, cache_.NumTokens(items[i].seq)});
  }
  return Forward(batch);
}

Result<std::vector<int32_t>> Generate(Model& model, SequenceId seq, std::span<const int32_t> prompt,
                                      const GenerateOptions& options) {
  std::vector<int32_t> out;
  if (options.max_new_tokens <= 0) return out;
  Sampler sampler(options.sampling);
  KVSTORE_ASSIGN_OR_RETURN(std::vector<float> logits, model.Prefill(seq, prompt));
  for (;;) {
    const int32_t next = sampler.Sample(logits);
    out.push_back(next);
    if (static_cast<int>(out.size()) >= options.max_new_tokens) break;
    const auto& eos = model.config().eos_token_ids;
    if (options.stop_at_eos && std::find(eos.begin(), eos.end(), next) != eos.end()) break;
    KVSTORE_ASSIGN_OR_RETURN(logits, model.Decode(seq, next));
  }
  return out;
}

}  // namespace kvstore::engine
