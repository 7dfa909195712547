// Scheduler: owns the Model and runs every completion of a prefill, decode
// or both engine. The model is not thread-safe, so one worker thread owns it
// and does all compute; HTTP threads only Submit and read RequestStreams.
//
// Worker loop: admit every ready request (prefill it; emit its first token),
// then run one DecodeBatch step over all running sequences (continuous
// batching), and repeat. A request that arrives while others decode gets its
// prefill before their next step -- which is exactly the ITL interference
// disaggregation removes. With --max-prefill-chunk N (role both), prompts
// are instead computed N tokens per step inside the decode step's batch (one
// forward pass over the running decodes plus prefill chunks, as vLLM's
// chunked prefill does), so a long prompt delays each decode step by at most
// an N-token chunk.
//
// A request with n > 1 choices prefills its prompt once; the other choices
// fork the prompt's sequence (its KV blocks are shared, copy-on-write) and
// sample from the same logits with seed + i. Generation of a choice ends at
// max_tokens ("length"), at a stop token id or (unless ignore_eos) any of the
// model's EOS ids, or at a stop string ("stop"); text goes through a
// TextStream so streamed text never splits a UTF-8 character.
//
// Roles:
//   both    prefill + decode locally, with a local prefix cache (blocks
//           published under their prefix keys, attached by later prompts).
//   prefill MatchPrefix + Retain in kvstored, prefill in chunks of
//           prefill_chunk_blocks blocks, each full block packed and handed to
//           the KvPublisher as soon as it is computed; answers with the first
//           token once its blocks are in the store.
//   decode  a loader thread drop_selects the prompt's full blocks (waiting up
//           to kv_timeout), the worker unpacks them, prefills only the tail
//           and decodes. On a miss: recompute or fail (on_kv_miss).
//
// Thread-safety: Submit and Health from any thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kvstore/client.h"
#include "kvstore/engine/completion_api.h"
#include "kvstore/engine/engine_metrics.h"
#include "kvstore/engine/engine_options.h"
#include "kvstore/engine/kv_publisher.h"
#include "kvstore/engine/kv_staging.h"
#include "kvstore/engine/model.h"
#include "kvstore/engine/request_stream.h"
#include "kvstore/engine/tokenizer.h"

namespace kvstore::engine {

struct Job;

class Scheduler {
 public:
  // Loads the model and, for prefill and decode, connects to the store.
  // REQUIRES: options.role != kProxy; metrics outlives the scheduler.
  static Result<std::unique_ptr<Scheduler>> Create(const EngineOptions& options,
                                                   EngineMetrics* metrics);
  // Fails what is still running (503) and joins every thread.
  ~Scheduler();

  // Queues a parsed request; results arrive on out.
  void Submit(CompletionRequest request, std::shared_ptr<RequestStream> out);
  // OK when the model is loaded and (prefill, decode) the store answers a ping.
  Status Health();

  // Under a cluster's local placement: the store node this engine writes its
  // KV to (its /health says it, so a --overlap proxy knows it up front); else "".
  const std::string& kv_node() const { return kv_node_; }
  int vocab_size() const { return api_.vocab_size; }
  // What request parsing needs: vocabulary, tokenizer, chat template, limits.
  const ApiContext& api_context() const { return api_; }
  // The key namespace: model identity, KV layout, rank.
  const std::string& key_namespace() const { return key_ns_; }

 private:
  Scheduler(const EngineOptions& options, EngineMetrics* metrics);
  void WorkerLoop();
  void Admit(const std::shared_ptr<Job>& job);
  // The prompt is computed: fork the choices and emit their first tokens.
  void StartChoices(const std::shared_ptr<Job>& job, std::span<const float> logits);
  // One forward pass over the running decodes (up to max_batch; the ones left
  // out go first next time) and, with --max-prefill-chunk, prefill chunks.
  void Step();
  // Records token for choice c; emits its text; marks the choice done when it ends.
  void EmitToken(Job& job, int c, int32_t token, std::span<const float> logits);
  void EndChoice(Job& job, int c, std::string finish_reason);
  void FreeSequences(Job& job);
  void Finish(const std::shared_ptr<Job>& job);
  void Fail(const std::shared_ptr<Job>& job, int http_status, std::string type,
            std::string message);
  void MakeReady(std::shared_ptr<Job> job);

  // prefill_role.cc
  Result<std::vector<float>> PrefillWithStore(const std::shared_ptr<Job>& job);
  // both: the same local prefix cache as prefill, without the store.
  Result<std::vector<float>> PrefillWithLocalCache(const std::shared_ptr<Job>& job);
  Result<int> AttachLocalPrefix(const std::shared_ptr<Job>& job);  // blocks attached
  void PublishLocal(const std::shared_ptr<Job>& job);
  void PublishBlock(const std::shared_ptr<Job>& job, int block);
  void PrefillComputeDone(const std::shared_ptr<Job>& job);
  void PrefillBlockDone(const std::shared_ptr<Job>& job, PublishOutcome outcome);

  // decode_role.cc
  void LoaderLoop();
  void LoadKv(const std::shared_ptr<Job>& job);
  Result<std::vector<float>> PrefillFromLoadedKv(const std::shared_ptr<Job>& job);
  void ReleaseKvSlots(Job& job);

  EngineOptions options_;
  EngineMetrics* metrics_;
  std::unique_ptr<Model> model_;          // owned by the worker thread once started
  std::unique_ptr<Tokenizer> tokenizer_;  // null: the model has no text tokenizer
  ApiContext api_;
  std::vector<int32_t> eos_ids_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<KvStaging> staging_;      // prefill, decode: registered KV memory
  std::unique_ptr<KvPublisher> publisher_;  // prefill role
  std::string key_ns_;
  std::string kv_layout_;
  // prefill under a cluster's local placement: its own store node, answered
  // to the proxy (kv_transfer_params.remote_store_node); else empty.
  std::string kv_node_;
  size_t block_bytes_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> ready_;    // guarded by mu_; to be admitted
  std::deque<std::shared_ptr<Job>> to_load_;  // guarded by mu_; decode: waiting for a loader
  bool stop_ = false;                         // guarded by mu_
  std::condition_variable load_cv_;
  struct Running {
    std::shared_ptr<Job> job;
    int choice;
  };
  std::vector<Running> active_;                  // worker thread only: decoding
  std::deque<std::shared_ptr<Job>> prefilling_;  // worker thread only: chunked prefill

  std::thread worker_;
  std::vector<std::thread> loaders_;
};

}  // namespace kvstore::engine
