// Model: a Llama-architecture transformer (embedding, RMSNorm, RoPE,
// grouped-query attention over a paged KV cache, SwiGLU MLP, final norm, LM
// head) with its own PagedKvCache.
//
// Backends: the CPU backend runs the kvstore::kernels CPU functions (the
// references of the CUDA kernels); the CUDA backend runs their CUDA twins,
// with the weights uploaded to the GPU once at creation. kAuto picks the GPU
// when one is usable and the CUDA backend starts, else the CPU, and logs one
// line saying which and why. kCuda fails with Unavailable (naming the reason)
// when the build has no CUDA or no usable GPU is found.
//
// KV on the CUDA backend: the host PagedKvCache stays authoritative, so
// kv_cache() and its Pack/Unpack/prefix calls behave exactly as on the CPU.
// Each forward step copies the KV blocks of the batch's sequences to a device
// mirror and the blocks it wrote back to the host (see engine/src/model/cuda_forward.h).
//
// Typical prefill side:   seq = cache.CreateSequence(); Prefill(seq, prompt);
//                         cache.PackBlocks(seq, 0, full_blocks, buf) -> store
// Typical decode side:    seq = cache.CreateSequence();
//                         cache.UnpackBlocks(seq, payload, full_blocks * block_size);
//                         logits = Prefill(seq, prompt);  // computes the tail only
//                         then Decode(seq, token) per new token.
//
// Thread-safety: not thread-safe; one thread drives a Model and its cache.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kvstore/engine/model_config.h"
#include "kvstore/engine/model_weights.h"
#include "kvstore/engine/paged_kv_cache.h"
#include "kvstore/engine/sampler.h"
#include "kvstore/kernels/thread_pool.h"
#include "kvstore/status.h"

namespace kvstore::engine {

enum class Backend : uint8_t { kAuto, kCpu, kCuda };
class CudaForward;  // the GPU forward pass; private to the model library
std::string_view BackendName(Backend backend);

struct ModelOptions {
  Backend backend = Backend::kAuto;
  int num_threads = 1;         // CPU threads, including the caller's
  int kv_cache_blocks = 1024;  // blocks in the paged cache
  int block_size = 16;         // tokens per block
};

class Model {
 public:
  // The built-in tiny model (TinyConfig) with RandomWeights(config, seed).
  static Result<std::unique_ptr<Model>> CreateBuiltin(uint64_t seed, const ModelOptions& options);
  // A Hugging Face checkpoint directory (see weights_loader.h).
  static Result<std::unique_ptr<Model>> LoadHf(const std::string& dir, const ModelOptions& options);
  // Any config and matching weights.
  static Result<std::unique_ptr<Model>> Create(ModelConfig config, ModelWeights weights,
                                               const ModelOptions& options);

  ~Model();

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  Backend backend() const { return backend_; }  // resolved: kCpu or kCuda
  // The packed-block layout string for the key namespace, e.g.
  // "llama/f32/L4/kv2/d32/b16/v1".
  std::string KvLayout() const;
  PagedKvCache& kv_cache() { return cache_; }
  const PagedKvCache& kv_cache() const { return cache_; }

  // tokens is the whole prompt from position 0. Computes the KV of positions
  // [NumTokens(seq), tokens.size()) -- whatever is not in the cache already,
  // e.g. the tail after unpacked or attached blocks -- and returns the logits
  // [vocab] of the last position. If the cache already holds every position,
  // the last one is recomputed to get its logits. The cached prefix must be
  // the KV of these same tokens; the cache cannot check that.
  Result<std::vector<float>> Prefill(SequenceId seq, std::span<const int32_t> tokens);

  // Appends token at position NumTokens(seq); returns the next logits [vocab].
  Result<std::vector<float>> Decode(SequenceId seq, int32_t token);

  // One forward pass over several sequences, each appending its new tokens
  // at NumTokens(seq) (a decode token, or a chunk of a prompt); returns the
  // logits of each item's last token. The same results as computing each
  // item alone (chunked prefill relies on this).
  struct StepItem {
    SequenceId seq;
    std::span<const int32_t> tokens;  // REQUIRES: not empty
  };
  Result<std::vector<std::vector<float>>> Step(std::span<const StepItem> items);

  // One decode step for several sequences in one batch; logits[i] belongs to
  // seqs[i]. Same results as calling Decode for each.
  Result<std::vector<std::vector<float>>> DecodeBatch(std::span<const SequenceId> seqs,
                                                      std::span<const int32_t> tokens);

 private:
  struct BatchItem {
    SequenceId seq;
    std::span<const int32_t> tokens;  // new tokens
    int start_pos;                    // position of tokens[0]
  };
  Model(ModelConfig config, ModelWeights weights, const ModelOptions& options, Backend backend);
  Result<std::vector<std::vector<float>>> Forward(std::span<const BatchItem> items);

  ModelConfig config_;
  ModelWeights weights_;
  ModelOptions options_;
  Backend backend_;
  PagedKvCache cache_;
  kernels::ThreadPool pool_;
  std::unique_ptr<CudaForward> gpu_;  // set iff backend_ is kCuda
};

struct GenerateOptions {
  int max_new_tokens = 32;
  SamplingParams sampling;
  bool stop_at_eos = true;
};

// Prefills prompt into seq (computing only what the cache lacks), then samples
// up to max_new_tokens tokens, feeding each back through Decode. Returns the
// new tokens (the EOS included when it stops there).
Result<std::vector<int32_t>> Generate(Model& model, SequenceId seq, std::span<const int32_t> prompt,
                                      const GenerateOptions& options);

}  // namespace kvstore::engine
