// The OpenAI-style completions API of kvstore-engine: parsing a
// POST /v1/completions body, and the JSON of answers, stream chunks and
// errors. Extensions beyond OpenAI: "token_ids" in each choice (the exact
// tokens, which is what disaggregated-vs-colocated checks compare), "ignore_eos",
// and a "kvstore" object telling how the KV of the prompt travelled.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "kvstore/engine/sampler.h"
#include "kvstore/status.h"

namespace kvstore::engine {

struct CompletionRequest {
  std::vector<int32_t> prompt;  // token ids; a text prompt is byte-tokenized with BOS
  int max_tokens = 16;
  SamplingParams sampling;
  bool stream = false;
  bool stop_at_eos = true;     // false when "ignore_eos": true
  bool remote_prefill = true;  // decode: false when the proxy says prefill failed,
                               // so decode does not wait for KV that will not come
};

// What happened to the prompt's KV on this engine.
struct KvReport {
  int full_blocks = 0;      // blocks with a key (prompt tokens / block size)
  int reused_blocks = 0;    // prefill: blocks retained in the store instead of inserted
  int local_blocks = 0;     // prefill: blocks attached from the local prefix cache
  int inserted_blocks = 0;  // prefill: blocks inserted
  int insert_errors = 0;    // prefill: inserts that failed (decode will recompute)
  int loaded_blocks = 0;    // decode: blocks taken from the store
  std::string miss;         // decode: empty, or why KV was missing ("timeout", ...)
  uint64_t bytes = 0;       // KV bytes pushed (prefill) or pulled (decode)
};

// Parses and validates the body; vocab_size bounds the token ids; text
// prompts need a byte-level vocabulary (the built-in model).
Result<CompletionRequest> ParseCompletionRequest(std::string_view body, int vocab_size,
                                                 bool has_text_tokenizer, int max_tokens_limit);

struct CompletionResult {
  std::vector<int32_t> tokens;
  std::string text;
  std::string finish_reason;  // "length" or "stop"
  int prompt_tokens = 0;
  KvReport kv;
};

nlohmann::json CompletionJson(const std::string& id, const std::string& model,
                              const CompletionResult& result);
// One server-sent event chunk for a streamed token ("data: {...}\n\n").
std::string StreamTokenEvent(const std::string& id, const std::string& model, int32_t token,
                             const std::string& text);
// The closing chunk with finish_reason, usage and kvstore, then "data: [DONE]".
std::string StreamFinalEvents(const std::string& id, const std::string& model,
                              const CompletionResult& result);
// {"error": {"message", "type", "code"}}
std::string ErrorJson(std::string_view message, std::string_view type, int code);
nlohmann::json KvReportJson(const KvReport& kv);
// JSON text; invalid UTF-8 (byte tokens) is replaced, never thrown on.
std::string DumpJson(const nlohmann::json& j);

}  // namespace kvstore::engine
