// Job: one completion request as the Scheduler carries it between threads.
// Private to the scheduler's files.
//
// Thread-safety: the fields before `mu` are handed from thread to thread
// (HTTP -> loader -> worker) through the scheduler's queues, one owner at a
// time; the prefill completion fields are guarded by mu.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "kvstore/engine/completion_api.h"
#include "kvstore/engine/paged_kv_cache.h"
#include "kvstore/engine/request_stream.h"
#include "kvstore/engine/sampler.h"
#include "kvstore/key.h"

namespace kvstore::engine {

struct Job {
  CompletionRequest request;
  std::shared_ptr<RequestStream> out;
  std::vector<Key> keys;              // one per full block of the prompt
  std::vector<std::byte> kv_payload;  // decode: kv.loaded_blocks packed blocks
  KvReport kv;

  SequenceId seq = 0;  // 0 = none
  std::optional<Sampler> sampler;
  std::vector<int32_t> generated;
  std::chrono::steady_clock::time_point last_token_time;

  // prefill: the answer goes out when compute is done and every block is published.
  std::mutex mu;
  int pending_blocks = 0;     // guarded by mu
  bool compute_done = false;  // guarded by mu
  std::string finish_reason;  // guarded by mu
};

}  // namespace kvstore::engine
