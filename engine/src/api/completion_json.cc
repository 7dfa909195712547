// The JSON of answers, stream chunks, model lists and errors.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "kvstore/engine/completion_api.h"
#include "kvstore/engine/text_stream.h"

namespace kvstore::engine {

using nlohmann::json;

int64_t NowUnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string DumpJson(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

json KvReportJson(const KvReport& kv) {
  json k = {{"full_blocks", kv.full_blocks}, {"bytes", kv.bytes}};
  k["reused_blocks"] = kv.reused_blocks;
  k["local_blocks"] = kv.local_blocks;
  k["inserted_blocks"] = kv.inserted_blocks;
  k["insert_errors"] = kv.insert_errors;
  k["loaded_blocks"] = kv.loaded_blocks;
  k["miss"] = kv.miss;
  k["registered_blocks"] = kv.registered_blocks;
  return k;
}

TokenLogprob TokenLogprobOf(std::span<const float> logits, int32_t token, int k) {
  double max = -INFINITY;
  for (float l : logits) max = std::max<double>(max, l);
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - max);
  const double log_z = max + std::log(sum);
  TokenLogprob t;
  t.token = token;
  t.logprob = static_cast<float>(logits[token] - log_z);
  k = std::min<int>(k, static_cast<int>(logits.size()));
  if (k > 0) {
    std::vector<int32_t> ids(logits.size());
    std::iota(ids.begin(), ids.end(), 0);
    std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t a, int32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    for (int i = 0; i < k; ++i)
      t.top.emplace_back(ids[i], static_cast<float>(logits[ids[i]] - log_z));
  }
  return t;
}

namespace {

std::string TokenString(const ResponseContext& ctx, int32_t id) {
  if (ctx.tokenizer == nullptr) return "token_id:" + std::to_string(id);
  return SanitizeUtf8(ctx.tokenizer->TokenBytes(id));
}

json TokenBytesJson(const ResponseContext& ctx, int32_t id) {
  json b = json::array();
  if (ctx.tokenizer != nullptr)
    for (unsigned char c : ctx.tokenizer->TokenBytes(id)) b.push_back(c);
  return b;
}

// Logprobs of some tokens in the endpoint's shape; text_offset counts from offset.
json LogprobsJson(const ResponseContext& ctx, std::span<const TokenLogprob> lps, size_t offset) {
  if (ctx.endpoint == Endpoint::kChat) {
    json content = json::array();
    for (const TokenLogprob& t : lps) {
      json top = json::array();
      for (auto [id, lp] : t.top)
        top.push_back(
            {{"token", TokenString(ctx, id)}, {"logprob", lp}, {"bytes", TokenBytesJson(ctx, id)}});
      content.push_back({{"token", TokenString(ctx, t.token)},
                         {"logprob", t.logprob},
                         {"bytes", TokenBytesJson(ctx, t.token)},
                         {"top_logprobs", std::move(top)}});
    }
    return {{"content", std::move(content)}};
  }
  json tokens = json::array(), token_logprobs = json::array(), top = json::array(),
       text_offset = json::array();
  for (const TokenLogprob& t : lps) {
    std::string s = TokenString(ctx, t.token);
    tokens.push_back(s);
    token_logprobs.push_back(t.logprob);
    json alts = json::object();
    for (auto [id, lp] : t.top) alts[TokenString(ctx, id)] = lp;
    top.push_back(std::move(alts));
    text_offset.push_back(offset);
    offset += s.size();
  }
  return {{"tokens", tokens},
          {"token_logprobs", token_logprobs},
          {"top_logprobs", top},
          {"text_offset", text_offset}};
}

json Usage(const std::vector<CompletionResult>& prompts) {
  int prompt = 0, completion = 0;
  for (const CompletionResult& r : prompts) {
    prompt += r.prompt_tokens;
    for (const ChoiceResult& c : r.choices) completion += static_cast<int>(c.tokens.size());
  }
  return {{"prompt_tokens", prompt},
          {"completion_tokens", completion},
          {"total_tokens", prompt + completion}};
}

// One report for the request: counts summed over its prompts, the first miss.
json KvJson(const std::vector<CompletionResult>& prompts) {
  KvReport sum;
  for (const CompletionResult& r : prompts) {
    const KvReport& k = r.kv;
    sum.full_blocks += k.full_blocks;
    sum.reused_blocks += k.reused_blocks;
    sum.local_blocks += k.local_blocks;
    sum.inserted_blocks += k.inserted_blocks;
    sum.insert_errors += k.insert_errors;
    sum.loaded_blocks += k.loaded_blocks;
    sum.bytes += k.bytes;
    sum.registered_blocks += k.registered_blocks;
    if (sum.miss.empty()) sum.miss = k.miss;
  }
  return KvReportJson(sum);
}

json Envelope(const ResponseContext& ctx, bool chunk) {
  const char* object = ctx.endpoint == Endpoint::kChat
                           ? (chunk ? "chat.completion.chunk" : "chat.completion")
                           : "text_completion";
  return {{"id", ctx.id},
          {"object", object},
          {"created", ctx.created},
          {"model", ctx.model},
          {"system_fingerprint", nullptr}};
}

}  // namespace

json ResponseJson(const ResponseContext& ctx, const std::vector<CompletionResult>& prompts) {
  std::vector<const ChoiceResult*> all;
  for (const CompletionResult& r : prompts)
    for (const ChoiceResult& c : r.choices) all.push_back(&c);
  std::sort(all.begin(), all.end(),
            [](const ChoiceResult* a, const ChoiceResult* b) { return a->index < b->index; });
  json choices = json::array();
  for (const ChoiceResult* c : all) {
    json lp = ctx.logprobs ? LogprobsJson(ctx, c->logprobs, 0) : json(nullptr);
    if (ctx.endpoint == Endpoint::kChat) {
      choices.push_back({{"index", c->index},
                         {"message", {{"role", "assistant"}, {"content", c->text}}},
                         {"token_ids", c->tokens},
                         {"logprobs", std::move(lp)},
                         {"finish_reason", c->finish_reason}});
    } else {
      choices.push_back({{"index", c->index},
                         {"text", c->text},
                         {"token_ids", c->tokens},
                         {"logprobs", std::move(lp)},
                         {"finish_reason", c->finish_reason}});
    }
  }
  json j = Envelope(ctx, /*chunk=*/false);
  j["choices"] = std::move(choices);
  j["usage"] = Usage(prompts);
  j["kvstore"] = KvJson(prompts);
  // Where each prompt's KV went (cluster, local placement), for the proxy to
  // pass to the decode as vLLM passes a producer's kv_transfer_params.
  // A prompt shorter than a block stored nothing: "" (the decode needs none).
  json nodes = json::array();
  bool any = false;
  for (const CompletionResult& r : prompts) {
    nodes.push_back(r.kv.node);
    any = any || !r.kv.node.empty();
  }
  if (any) {
    bool same =
        std::all_of(nodes.begin(), nodes.end(), [&](const json& n) { return n == nodes[0]; });
    j["kv_transfer_params"] = {{"remote_store_node", same ? nodes[0] : nodes}};
  }
  return j;
}

std::string StreamChunk(const ResponseContext& ctx, const ChoiceDelta& d) {
  json choice = {{"index", d.index}, {"token_ids", d.tokens}};
  if (ctx.endpoint == Endpoint::kChat) {
    json delta = json::object();
    if (d.first) delta["role"] = "assistant";
    if (!d.text.empty() || d.first) delta["content"] = d.text;
    choice["delta"] = std::move(delta);
  } else {
    choice["text"] = d.text;
  }
  choice["logprobs"] = ctx.logprobs && d.logprob
                           ? LogprobsJson(ctx, std::span<const TokenLogprob>(&*d.logprob, 1), 0)
                           : json(nullptr);
  choice["finish_reason"] = d.finish_reason.empty() ? json(nullptr) : json(d.finish_reason);
  json j = Envelope(ctx, /*chunk=*/true);
  j["choices"] = json::array({std::move(choice)});
  return "data: " + DumpJson(j) + "\n\n";
}

std::string StreamFinalEvents(const ResponseContext& ctx,
                              const std::vector<CompletionResult>& prompts) {
  std::string out;
  if (ctx.include_usage) {
    json j = Envelope(ctx, /*chunk=*/true);
    j["choices"] = json::array();
    j["usage"] = Usage(prompts);
    j["kvstore"] = KvJson(prompts);
    out = "data: " + DumpJson(j) + "\n\n";
  }
  return out + "data: [DONE]\n\n";
}

std::string ErrorJson(const ApiError& e) {
  json j = {{"error",
             {{"message", e.message},
              {"type", e.type},
              {"param", e.param.empty() ? json(nullptr) : json(e.param)},
              {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
  return DumpJson(j);
}

std::string ErrorJson(std::string_view message, std::string_view type, int http_status) {
  ApiError e;
  e.http_status = http_status;
  e.type = std::string(type);
  e.message = std::string(message);
  e.code = std::to_string(http_status);
  return ErrorJson(e);
}

std::string ModelsJson(const std::string& model_name) {
  json m = {{"id", model_name},
            {"object", "model"},
            {"created", NowUnixSeconds()},
            {"owned_by", "kvstore"}};
  return DumpJson({{"object", "list"}, {"data", json::array({m})}});
}

}  // namespace kvstore::engine
