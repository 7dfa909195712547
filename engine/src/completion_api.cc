#include "kvstore/engine/completion_api.h"

#include <chrono>

#include "kvstore/engine/tokenizer.h"

namespace kvstore::engine {

using nlohmann::json;

Result<CompletionRequest> ParseCompletionRequest(std::string_view body, int vocab_size,
                                                 bool has_text_tokenizer, int max_tokens_limit) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return Status::InvalidArgument("request body is not a JSON object");
  CompletionRequest r;
  if (!j.contains("prompt")) return Status::InvalidArgument("missing \"prompt\"");
  const json& p = j["prompt"];
  if (p.is_string()) {
    if (!has_text_tokenizer)
      return Status::InvalidArgument(
          "this model has no text tokenizer: send \"prompt\" as an array of token ids");
    r.prompt = ByteTokenizer::Encode(p.get<std::string>(), /*add_bos=*/true);
  } else if (p.is_array()) {
    for (const json& t : p) {
      if (!t.is_number_integer())
        return Status::InvalidArgument("\"prompt\" array must hold integer token ids");
      int64_t v = t.get<int64_t>();
      if (v < 0 || v >= vocab_size)
        return Status::InvalidArgument("token id " + std::to_string(v) +
                                       " outside the vocabulary [0, " + std::to_string(vocab_size) +
                                       ")");
      r.prompt.push_back(static_cast<int32_t>(v));
    }
  } else {
    return Status::InvalidArgument("\"prompt\" must be a string or an array of token ids");
  }
  if (r.prompt.empty()) return Status::InvalidArgument("\"prompt\" is empty");
  // A float where an integer goes (1e300) would not fit: refuse it, never convert.
  for (const char* field : {"max_tokens", "top_k", "seed"}) {
    if (j.contains(field) && !j[field].is_number_integer())
      return Status::InvalidArgument(std::string("\"") + field + "\" must be an integer");
  }
  try {
    r.max_tokens = j.value("max_tokens", r.max_tokens);
    r.sampling.temperature = j.value("temperature", 0.0f);
    r.sampling.top_k = j.value("top_k", 0);
    r.sampling.seed = j.value("seed", uint64_t{0});
    r.stream = j.value("stream", false);
    r.stop_at_eos = !j.value("ignore_eos", false);
    if (j.contains("kv_transfer_params") && j["kv_transfer_params"].is_object())
      r.remote_prefill = j["kv_transfer_params"].value("remote_prefill", true);
  } catch (const json::exception& e) {
    return Status::InvalidArgument(std::string("bad field type: ") + e.what());
  }
  if (r.max_tokens < 1 || r.max_tokens > max_tokens_limit)
    return Status::InvalidArgument("\"max_tokens\" must be in [1, " +
                                   std::to_string(max_tokens_limit) + "]");
  if (r.sampling.temperature < 0) return Status::InvalidArgument("\"temperature\" must be >= 0");
  if (r.sampling.top_k < 0) return Status::InvalidArgument("\"top_k\" must be >= 0");
  return r;
}

json KvReportJson(const KvReport& kv) {
  json k = {{"full_blocks", kv.full_blocks}, {"bytes", kv.bytes}};
  k["reused_blocks"] = kv.reused_blocks;
  k["local_blocks"] = kv.local_blocks;
  k["inserted_blocks"] = kv.inserted_blocks;
  k["insert_errors"] = kv.insert_errors;
  k["loaded_blocks"] = kv.loaded_blocks;
  k["miss"] = kv.miss;
  return k;
}

namespace {

int64_t NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json Usage(const CompletionResult& r) {
  int n = static_cast<int>(r.tokens.size());
  return {{"prompt_tokens", r.prompt_tokens},
          {"completion_tokens", n},
          {"total_tokens", r.prompt_tokens + n}};
}

// The fields every completion object and stream event share.
json Envelope(const std::string& id, const std::string& model, json choice) {
  return {{"id", id},
          {"object", "text_completion"},
          {"created", NowUnix()},
          {"model", model},
          {"choices", json::array({std::move(choice)})}};
}

}  // namespace

std::string DumpJson(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

json CompletionJson(const std::string& id, const std::string& model, const CompletionResult& r) {
  json choice = {{"index", 0},
                 {"text", r.text},
                 {"token_ids", r.tokens},
                 {"finish_reason", r.finish_reason},
                 {"logprobs", nullptr}};
  json j = Envelope(id, model, std::move(choice));
  j["usage"] = Usage(r);
  j["kvstore"] = KvReportJson(r.kv);
  return j;
}

std::string StreamTokenEvent(const std::string& id, const std::string& model, int32_t token,
                             const std::string& text) {
  json choice = {{"index", 0},
                 {"text", text},
                 {"token_ids", json::array({token})},
                 {"finish_reason", nullptr}};
  return "data: " + DumpJson(Envelope(id, model, std::move(choice))) + "\n\n";
}

std::string StreamFinalEvents(const std::string& id, const std::string& model,
                              const CompletionResult& r) {
  json choice = {
      {"index", 0}, {"text", ""}, {"token_ids", json::array()}, {"finish_reason", r.finish_reason}};
  json j = Envelope(id, model, std::move(choice));
  j["usage"] = Usage(r);
  j["kvstore"] = KvReportJson(r.kv);
  return "data: " + DumpJson(j) + "\n\ndata: [DONE]\n\n";
}

std::string ErrorJson(std::string_view message, std::string_view type, int code) {
  json j = {{"error", {{"message", message}, {"type", type}, {"code", code}}}};
  return DumpJson(j);
}

}  // namespace kvstore::engine
