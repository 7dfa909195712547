// Job: one prompt of a completion request (with its n choices) as the
// Scheduler carries it between threads. Private to the scheduler's files.
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
#include "kvstore/engine/text_stream.h"
#include "kvstore/key.h"

namespace kvstore::engine {

// One generated sequence of a prompt.
struct Choice {
  SequenceId seq = 0;  // 0 = none
  std::optional<Sampler> sampler;
  std::optional<TextStream> text;
  ChoiceResult result;  // tokens, text, logprobs so far; finish_reason when done
  std::chrono::steady_clock::time_point last_token_time;
  bool done = false;
};

struct Job {
  CompletionRequest request;
  std::shared_ptr<RequestStream> out;
  std::vector<Key> keys;              // one per full block of the prompt
  std::vector<std::byte> kv_payload;  // decode: kv.loaded_blocks packed blocks (plain path)
  std::vector<int> kv_slots;          // decode: or these KvStaging slots, one per key
  KvReport kv;

  SequenceId seq = 0;  // the prompt's sequence (choice 0's); 0 = none
  std::vector<Choice> choices;
  int running = 0;      // choices not done
  bool failed = false;  // worker: an error went out; drop its choices

  // prefill: the answer goes out when compute is done and every block is published.
  std::mutex mu;
  int pending_blocks = 0;     // guarded by mu
  bool compute_done = false;  // guarded by mu
};

}  // namespace kvstore::engine
