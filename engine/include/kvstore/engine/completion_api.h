// The OpenAI-style API of kvstore-engine: parsing POST /v1/completions and
// POST /v1/chat/completions bodies, and the JSON of answers, stream chunks,
// model lists and errors.
//
// Supported (anything else in a body is refused with a 400 naming the field):
//   both:        model (must be the served name), max_tokens, temperature,
//                top_p, top_k, n (1-16), seed (choice i samples with seed + i),
//                stream, stream_options.include_usage, stop (string or up to
//                16 strings; the match is not emitted, finish_reason "stop"),
//                stop_token_ids, ignore_eos, user, frequency_penalty and
//                presence_penalty (0 only), logit_bias (empty only),
//                kv_transfer_params (the proxy's: remote_prefill, and
//                remote_store_node, a HOST:PORT or one per prompt, that a
//                prefill answers in its own kv_transfer_params).
//   completions: prompt (string, token ids, or an array of either; choice
//                index = prompt index * n + i), logprobs (0-20 alternatives),
//                echo (not with logprobs: prompt logprobs are not computed),
//                best_of (equal to n only), suffix (empty only).
//   chat:        messages (see chat_template.h), max_completion_tokens,
//                logprobs (bool) + top_logprobs (0-20), response_format
//                {"type":"text"}, tool_choice "none", tools [] .
// Logprobs are log-softmax of the model's logits (before temperature, top_k
// and top_p). Extensions beyond OpenAI: "token_ids" in each choice (the exact
// tokens, which disaggregated-vs-colocated checks compare), "ignore_eos",
// "stop_token_ids", "top_k", and a "kvstore" object telling how the KV of the
// prompt travelled.
// Errors are {"error": {"message", "type", "param", "code"}}.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "kvstore/engine/chat_template.h"
#include "kvstore/engine/sampler.h"
#include "kvstore/engine/tokenizer.h"
#include "kvstore/status.h"

namespace kvstore::engine {

enum class Endpoint : uint8_t { kCompletions, kChat };

// One prompt of a request (an array of prompts becomes several).
struct CompletionRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  std::vector<int32_t> prompt;  // token ids
  std::string echo_text;        // completions with echo: the prompt's text
  int max_tokens = 16;
  int n = 1;                // choices of this prompt
  int choice_base = 0;      // answer index of this prompt's first choice
  SamplingParams sampling;  // choice i uses seed + i
  bool stream = false;
  bool include_usage = true;  // streamed: stream_options.include_usage (default on)
  bool stop_at_eos = true;    // false when "ignore_eos": true
  std::vector<std::string> stop;
  std::vector<int32_t> stop_token_ids;
  int logprobs = -1;           // -1: none; else alternatives per token (0-20)
  bool remote_prefill = true;  // decode: false when the proxy says prefill failed,
                               // so decode does not wait for KV that will not come
  // decode: the store node holding this prompt's KV, as the prefill engine
  // answered it (kv_transfer_params.remote_store_node, a cluster's local
  // placement); empty = the store client's own placement decides.
  std::string kv_node;
};

// What a request needs to know about the engine.
struct ApiContext {
  int vocab_size = 0;
  const Tokenizer* tokenizer = nullptr;  // null: token-id prompts only
  int max_tokens_limit = 4096;
  std::string model_name;
  ChatTemplate chat_template = ChatTemplate::kPlain;  // resolved
};

// A refused request: HTTP status and the OpenAI error fields.
struct ApiError {
  int http_status = 400;
  std::string type = "invalid_request_error";
  std::string param;  // the field at fault, or empty
  std::string code;   // e.g. "model_not_found", or empty
  std::string message;
};

// Parses and validates the body; one CompletionRequest per prompt. On error
// returns nullopt and fills *error.
std::optional<std::vector<CompletionRequest>> ParseRequest(Endpoint endpoint, std::string_view body,
                                                           const ApiContext& context,
                                                           ApiError* error);

// What happened to the prompt's KV on this engine.
struct KvReport {
  int full_blocks = 0;        // blocks with a key (prompt tokens / block size)
  int reused_blocks = 0;      // prefill: blocks retained in the store instead of inserted
  int local_blocks = 0;       // prefill: blocks attached from the local prefix cache
  int inserted_blocks = 0;    // prefill: blocks inserted
  int insert_errors = 0;      // prefill: inserts that failed (decode will recompute)
  int loaded_blocks = 0;      // decode: blocks taken from the store
  std::string miss;           // decode: empty, or why KV was missing ("timeout", ...)
  uint64_t bytes = 0;         // KV bytes pushed (prefill) or pulled (decode)
  int registered_blocks = 0;  // blocks moved through the registered staging region
  // prefill under a cluster's local placement: the store node its blocks went
  // to; answered as kv_transfer_params.remote_store_node for the decode.
  std::string node;
};

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;  // best first
};

struct ChoiceResult {
  int index = 0;
  std::vector<int32_t> tokens;  // generated, a matched stop token id included
  std::string text;             // valid UTF-8, stop string cut off
  std::string finish_reason;    // "length" or "stop"
  std::vector<TokenLogprob> logprobs;
};

// The result of one prompt (all its choices).
struct CompletionResult {
  std::vector<ChoiceResult> choices;
  int prompt_tokens = 0;
  KvReport kv;
};

// The fields every answer of one request shares.
struct ResponseContext {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string id;
  std::string model;
  int64_t created = 0;
  const Tokenizer* tokenizer = nullptr;  // for token strings in logprobs
  bool logprobs = false;
  bool include_usage = true;  // streamed: a last chunk with usage (and kvstore)
};
int64_t NowUnixSeconds();

// The non-streamed answer of all prompts of a request.
nlohmann::json ResponseJson(const ResponseContext& ctx,
                            const std::vector<CompletionResult>& prompts);

// One streamed piece of one choice.
struct ChoiceDelta {
  int index = 0;
  std::vector<int32_t> tokens;
  std::string text;
  std::optional<TokenLogprob> logprob;
  std::string finish_reason;  // set on the choice's last chunk
  bool first = false;         // chat: the chunk carrying role "assistant"
};
// "data: {...}\n\n" for one delta.
std::string StreamChunk(const ResponseContext& ctx, const ChoiceDelta& delta);
// The closing chunk (usage and kvstore, no choices) when ctx.include_usage,
// then "data: [DONE]".
std::string StreamFinalEvents(const ResponseContext& ctx,
                              const std::vector<CompletionResult>& prompts);

// {"error": {"message", "type", "param", "code"}}
std::string ErrorJson(const ApiError& error);
std::string ErrorJson(std::string_view message, std::string_view type, int http_status);
// GET /v1/models
std::string ModelsJson(const std::string& model_name);
nlohmann::json KvReportJson(const KvReport& kv);
// JSON text; invalid UTF-8 is replaced, never thrown on.
std::string DumpJson(const nlohmann::json& j);
// Log-softmax of logits with the k best alternatives (k may be 0).
TokenLogprob TokenLogprobOf(std::span<const float> logits, int32_t token, int k);

}  // namespace kvstore::engine
