// Parsing of /v1/completions and /v1/chat/completions bodies.
#include "kvstore/engine/completion_api.h"

#include <algorithm>
#include <set>

namespace kvstore::engine {

using nlohmann::json;

namespace {

constexpr int kMaxChoices = 16;
constexpr int kMaxPrompts = 64;
constexpr int kMaxStops = 16;
constexpr int kMaxLogprobs = 20;

// Collects the first error; every check names its field.
class Checker {
 public:
  Checker(const json& body, ApiError* error) : j_(body), error_(error) {}
  bool failed() const { return failed_; }

  bool Fail(std::string param, std::string message, int status = 400, std::string code = "") {
    if (failed_) return false;
    failed_ = true;
    error_->http_status = status;
    error_->type = status == 404 ? "not_found_error" : "invalid_request_error";
    error_->param = std::move(param);
    error_->code = std::move(code);
    error_->message = std::move(message);
    return false;
  }
  bool Has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }

  void Int(const char* key, int lo, int hi, int* out) {
    if (!Has(key)) return;
    const json& v = j_[key];
    if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi) {
      Fail(key, "\"" + std::string(key) + "\" must be an integer in [" + std::to_string(lo) + ", " +
                    std::to_string(hi) + "]" + Got(v));
      return;
    }
    *out = v.get<int>();
  }
  void Number(const char* key, double lo, double hi, float* out) {
    if (!Has(key)) return;
    const json& v = j_[key];
    if (!v.is_number() || v.get<double>() < lo || v.get<double>() > hi) {
      Fail(key, "\"" + std::string(key) + "\" must be a number in [" + Fmt(lo) + ", " + Fmt(hi) +
                    "]" + Got(v));
      return;
    }
    *out = v.get<float>();
  }
  void Bool(const char* key, bool* out) {
    if (!Has(key)) return;
    if (!j_[key].is_boolean()) {
      Fail(key, "\"" + std::string(key) + "\" must be true or false" + Got(j_[key]));
      return;
    }
    *out = j_[key].get<bool>();
  }
  // Accepted only with a value that changes nothing.
  void OnlyNeutral(const char* key, bool neutral, const std::string& what) {
    if (Has(key) && !neutral)
      Fail(key, "\"" + std::string(key) + "\" is supported only as " + what + " by this engine");
  }

  static std::string Got(const json& v) {
    std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
    if (s.size() > 40) s = s.substr(0, 40) + "...";
    return " (got " + s + ")";
  }

 private:
  static std::string Fmt(double d) {
    std::string s = std::to_string(d);
    s.erase(s.find_last_not_of('0') + 1);
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  }
  const json& j_;
  ApiError* error_;
  bool failed_ = false;
};

const std::set<std::string>& KnownFields(Endpoint e) {
  // Fields both endpoints take, then each endpoint's own.
  static const std::set<std::string> shared = {"model",
                                               "max_tokens",
                                               "temperature",
                                               "top_p",
                                               "top_k",
                                               "n",
                                               "stream",
                                               "stream_options",
                                               "stop",
                                               "stop_token_ids",
                                               "logprobs",
                                               "seed",
                                               "ignore_eos",
                                               "user",
                                               "kv_transfer_params",
                                               "frequency_penalty",
                                               "presence_penalty",
                                               "logit_bias"};
  auto with = [](std::initializer_list<const char*> own) {
    std::set<std::string> all = shared;
    all.insert(own.begin(), own.end());
    return all;
  };
  static const std::set<std::string> completions = with({"prompt", "echo", "best_of", "suffix"});
  static const std::set<std::string> chat =
      with({"messages", "max_completion_tokens", "top_logprobs", "response_format", "tool_choice",
            "tools"});
  return e == Endpoint::kChat ? chat : completions;
}

// A token-id array, checked against the vocabulary.
bool TokenIds(Checker& c, const json& v, const char* param, int vocab, std::vector<int32_t>* out) {
  for (const json& t : v) {
    if (!t.is_number_integer())
      return c.Fail(param,
                    "\"" + std::string(param) + "\" must hold integer token ids" + Checker::Got(t));
    const int64_t id = t.get<int64_t>();
    if (id < 0 || id >= vocab)
      return c.Fail(param, "token id " + std::to_string(id) + " in \"" + param +
                               "\" is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    out->push_back(static_cast<int32_t>(id));
  }
  return true;
}

bool EncodeText(Checker& c, const ApiContext& ctx, const char* param, const std::string& text,
                bool add_bos, std::vector<int32_t>* out) {
  if (ctx.tokenizer == nullptr)
    return c.Fail(param,
                  "this model has no text tokenizer (no tokenizer.json or tokenizer.model in its "
                  "checkpoint): send \"prompt\" as an array of token ids");
  auto ids = ctx.tokenizer->EncodeText(text, add_bos);
  if (!ids.ok())
    return c.Fail(param,
                  "cannot tokenize \"" + std::string(param) + "\": " + ids.status().message());
  *out = std::move(ids).value();
  return true;
}

// "prompt": the prompts of a completions request, and their text for echo.
bool Prompts(Checker& c, const json& p, const ApiContext& ctx,
             std::vector<std::vector<int32_t>>* prompts, std::vector<std::string>* texts) {
  auto one = [&](const json& v) {
    std::vector<int32_t> ids;
    std::string text;
    if (v.is_string()) {
      text = v.get<std::string>();
      if (!EncodeText(c, ctx, "prompt", text, /*add_bos=*/true, &ids)) return false;
    } else if (v.is_array()) {
      if (!TokenIds(c, v, "prompt", ctx.vocab_size, &ids)) return false;
    } else {
      return c.Fail("prompt",
                    "\"prompt\" must be a string, an array of token ids, or an array of "
                    "either" +
                        Checker::Got(v));
    }
    if (ids.empty()) return c.Fail("prompt", "\"prompt\" is empty");
    prompts->push_back(std::move(ids));
    texts->push_back(std::move(text));
    return true;
  };
  if (p.is_array() && !p.empty() && (p[0].is_string() || p[0].is_array())) {
    if (p.size() > kMaxPrompts)
      return c.Fail("prompt", "at most " + std::to_string(kMaxPrompts) + " prompts per request");
    for (const json& v : p)
      if (!one(v)) return false;
    return true;
  }
  return one(p);
}

bool Messages(Checker& c, const json& m, const ApiContext& ctx, std::vector<int32_t>* prompt,
              std::vector<std::string>* stop_tokens) {
  if (!m.is_array() || m.empty())
    return c.Fail("messages", "\"messages\" must be a non-empty array of {role, content}");
  std::vector<ChatMessage> messages;
  for (size_t i = 0; i < m.size(); ++i) {
    const std::string where = "messages[" + std::to_string(i) + "]";
    const json& msg = m[i];
    if (!msg.is_object()) return c.Fail(where, where + " must be an object {role, content}");
    for (const auto& [k, v] : msg.items())
      if (k != "role" && k != "content")
        return c.Fail(where + "." + k, where + "." + k +
                                           " is not supported by this engine (only role and "
                                           "content; no tool calls, names or images)");
    if (!msg.contains("role") || !msg["role"].is_string())
      return c.Fail(where + ".role", where + ".role must be a string");
    std::string role = msg["role"].get<std::string>();
    if (role == "developer") role = "system";
    if (role != "system" && role != "user" && role != "assistant")
      return c.Fail(where + ".role",
                    where + ".role \"" + role + "\" is not supported (system, user, assistant)");
    std::string content;
    const json& ct = msg.contains("content") ? msg["content"] : json();
    if (ct.is_string()) {
      content = ct.get<std::string>();
    } else if (ct.is_array()) {
      for (const json& part : ct) {
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
            !part["text"].is_string())
          return c.Fail(where + ".content",
                        where +
                            ".content parts must be {\"type\":\"text\",\"text\":...}; images "
                            "and audio are not supported");
        content += part["text"].get<std::string>();
      }
    } else {
      return c.Fail(where + ".content", where +
                                            ".content must be a string or an array of text "
                                            "parts");
    }
    messages.push_back({role, content});
  }
  RenderedChat r = RenderChat(ctx.chat_template, messages);
  *stop_tokens = r.stop_tokens;
  return EncodeText(c, ctx, "messages", r.text, r.add_bos, prompt);
}

}  // namespace

std::optional<std::vector<CompletionRequest>> ParseRequest(Endpoint endpoint, std::string_view body,
                                                           const ApiContext& ctx, ApiError* error) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  Checker c(j, error);
  if (j.is_discarded() || !j.is_object()) {
    c.Fail("", "request body is not a JSON object");
    return std::nullopt;
  }
  const bool chat = endpoint == Endpoint::kChat;
  for (const auto& [k, v] : j.items())
    if (KnownFields(endpoint).count(k) == 0) {
      c.Fail(k,
             "unsupported field \"" + k +
                 "\": this engine does not implement it (see "
                 "engine/README.md for what " +
                 (chat ? "/v1/chat/completions" : "/v1/completions") + " supports)",
             400, "unsupported_field");
      return std::nullopt;
    }
  if (c.Has("model") &&
      (!j["model"].is_string() || j["model"].get<std::string>() != ctx.model_name)) {
    c.Fail("model",
           "the model " + Checker::Got(j["model"]).substr(5) +
               " does not exist here; "
               "this engine serves \"" +
               ctx.model_name + "\" (GET /v1/models)",
           404, "model_not_found");
    return std::nullopt;
  }

  CompletionRequest r;
  r.endpoint = endpoint;
  if (chat) r.max_tokens = ctx.max_tokens_limit;
  c.Int("max_tokens", 1, ctx.max_tokens_limit, &r.max_tokens);
  if (chat) c.Int("max_completion_tokens", 1, ctx.max_tokens_limit, &r.max_tokens);
  c.Number("temperature", 0, 100, &r.sampling.temperature);
  c.Number("top_p", 0, 1, &r.sampling.top_p);
  if (c.Has("top_p") && !c.failed() && r.sampling.top_p <= 0)
    c.Fail("top_p", "\"top_p\" must be in (0, 1]");
  c.Int("top_k", -1, 1 << 30, &r.sampling.top_k);
  if (r.sampling.top_k < 0) r.sampling.top_k = 0;  // vLLM's -1: no cut
  c.Int("n", 1, kMaxChoices, &r.n);
  if (c.Has("seed")) {
    if (!j["seed"].is_number_integer())
      c.Fail("seed", "\"seed\" must be an integer" + Checker::Got(j["seed"]));
    else
      r.sampling.seed = j["seed"].is_number_unsigned()
                            ? j["seed"].get<uint64_t>()
                            : static_cast<uint64_t>(j["seed"].get<int64_t>());
  }
  c.Bool("stream", &r.stream);
  bool ignore_eos = false;
  c.Bool("ignore_eos", &ignore_eos);
  r.stop_at_eos = !ignore_eos;
  if (c.Has("stream_options")) {
    const json& so = j["stream_options"];
    if (!so.is_object() || !r.stream)
      c.Fail("stream_options", "\"stream_options\" must be an object and needs \"stream\": true");
    else
      for (const auto& [k, v] : so.items())
        if (k != "include_usage" || !v.is_boolean())
          c.Fail("stream_options." + k, "stream_options supports only include_usage (bool)");
        else
          r.include_usage = v.get<bool>();
  }
  if (c.Has("stop")) {
    const json& s = j["stop"];
    if (s.is_string()) {
      r.stop.push_back(s.get<std::string>());
    } else if (s.is_array() && s.size() <= kMaxStops) {
      for (const json& e : s) {
        if (!e.is_string()) {
          c.Fail("stop", "\"stop\" must be a string or an array of strings" + Checker::Got(e));
          break;
        }
        r.stop.push_back(e.get<std::string>());
      }
    } else {
      c.Fail("stop", "\"stop\" must be a string or an array of at most " +
                         std::to_string(kMaxStops) + " strings");
    }
    for (const std::string& s : r.stop)
      if (s.empty()) c.Fail("stop", "\"stop\" strings must not be empty");
    if (!r.stop.empty() && ctx.tokenizer == nullptr)
      c.Fail("stop",
             "stop strings need a text tokenizer, and this model has none; use "
             "\"stop_token_ids\"");
  }
  if (c.Has("stop_token_ids")) {
    if (!j["stop_token_ids"].is_array())
      c.Fail("stop_token_ids", "\"stop_token_ids\" must be an array of token ids");
    else
      TokenIds(c, j["stop_token_ids"], "stop_token_ids", ctx.vocab_size, &r.stop_token_ids);
  }
  float penalty = 0;
  c.Number("frequency_penalty", -2, 2, &penalty);
  c.OnlyNeutral("frequency_penalty", penalty == 0, "0");
  c.Number("presence_penalty", -2, 2, &penalty);
  c.OnlyNeutral("presence_penalty", penalty == 0, "0");
  c.OnlyNeutral("logit_bias",
                j.contains("logit_bias") && j["logit_bias"].is_object() && j["logit_bias"].empty(),
                "{}");
  if (c.Has("user") && !j["user"].is_string()) c.Fail("user", "\"user\" must be a string");
  std::vector<std::string> kv_nodes;  // one for every prompt, or one per prompt
  if (c.Has("kv_transfer_params")) {
    const json& k = j["kv_transfer_params"];
    if (!k.is_object()) {
      c.Fail("kv_transfer_params", "\"kv_transfer_params\" must be an object");
    } else {
      if (k.contains("remote_prefill")) {
        if (!k["remote_prefill"].is_boolean())
          c.Fail("kv_transfer_params.remote_prefill", "remote_prefill must be true or false");
        else
          r.remote_prefill = k["remote_prefill"].get<bool>();
      }
      if (k.contains("remote_store_node")) {
        const json& n = k["remote_store_node"];
        if (n.is_string()) {
          kv_nodes.push_back(n.get<std::string>());
        } else if (n.is_array() &&
                   std::all_of(n.begin(), n.end(), [](const json& e) { return e.is_string(); })) {
          kv_nodes = n.get<std::vector<std::string>>();
        } else {
          c.Fail("kv_transfer_params.remote_store_node",
                 "remote_store_node must be HOST:PORT or an array of them, one per prompt");
        }
      }
    }
  }

  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::string> texts;
  bool echo = false;
  if (chat) {
    bool want = false;
    c.Bool("logprobs", &want);
    int top = 0;
    c.Int("top_logprobs", 0, kMaxLogprobs, &top);
    if (c.Has("top_logprobs") && !want)
      c.Fail("top_logprobs", "\"top_logprobs\" needs \"logprobs\": true");
    r.logprobs = want ? top : -1;
    c.OnlyNeutral("response_format",
                  j.contains("response_format") && j["response_format"].is_object() &&
                      j["response_format"].value("type", "") == "text" &&
                      j["response_format"].size() == 1,
                  "{\"type\": \"text\"}");
    c.OnlyNeutral("tool_choice", j.contains("tool_choice") && j["tool_choice"] == "none",
                  "\"none\" (no tool calling)");
    c.OnlyNeutral("tools", j.contains("tools") && j["tools"].is_array() && j["tools"].empty(),
                  "[] (no tool calling)");
    if (!c.failed()) {
      if (!c.Has("messages")) {
        c.Fail("messages", "missing \"messages\"");
      } else {
        std::vector<int32_t> ids;
        std::vector<std::string> stop_tokens;
        if (Messages(c, j["messages"], ctx, &ids, &stop_tokens)) {
          for (const std::string& t : stop_tokens)
            if (auto id = ctx.tokenizer->SpecialTokenId(t)) r.stop_token_ids.push_back(*id);
          prompts.push_back(std::move(ids));
          texts.emplace_back();
        }
      }
    }
  } else {
    if (c.Has("logprobs")) c.Int("logprobs", 0, kMaxLogprobs, &r.logprobs);
    c.Bool("echo", &echo);
    if (echo && r.logprobs >= 0)
      c.Fail("echo",
             "\"echo\" together with \"logprobs\" is not supported: this engine does not "
             "compute the prompt's logprobs");
    int best_of = r.n;
    c.Int("best_of", 1, kMaxChoices, &best_of);
    c.OnlyNeutral("best_of", best_of == r.n, "equal to n");
    c.OnlyNeutral("suffix", j.contains("suffix") && j["suffix"] == "", "\"\"");
    if (!c.failed()) {
      if (!c.Has("prompt"))
        c.Fail("prompt", "missing \"prompt\"");
      else
        Prompts(c, j["prompt"], ctx, &prompts, &texts);
    }
  }
  if (kv_nodes.size() > 1 && kv_nodes.size() != prompts.size())
    c.Fail("kv_transfer_params.remote_store_node",
           "remote_store_node lists " + std::to_string(kv_nodes.size()) + " nodes for " +
               std::to_string(prompts.size()) + " prompts");
  if (c.failed()) return std::nullopt;

  std::vector<CompletionRequest> out;
  for (size_t i = 0; i < prompts.size(); ++i) {
    CompletionRequest p = r;
    p.prompt = std::move(prompts[i]);
    p.choice_base = static_cast<int>(i) * r.n;
    if (!kv_nodes.empty()) p.kv_node = kv_nodes[kv_nodes.size() == 1 ? 0 : i];
    if (echo) {
      p.echo_text = !texts[i].empty() || ctx.tokenizer == nullptr
                        ? texts[i]
                        : ctx.tokenizer->DecodeBytes(p.prompt);
    }
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace kvstore::engine
