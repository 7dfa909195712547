// The OpenAI surface end to end, with request bodies shaped as the `openai`
// Python client sends them, on every role and through the proxy: the
// disaggregated answer must equal the colocated engine's for each feature.
// A second cluster serves a checkpoint the test writes -- a "bigram" model
// whose next token depends only on the current one, so its answer is known
// ("a中😀é" then <|eot_id|>) -- with a byte-level BPE tokenizer.json, to check
// text prompts, multi-byte streaming, stop strings and EOS lists exactly.
#include <gtest/gtest.h>

#include "status_matchers.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cluster.h"
#include "kvstore/engine/http_client.h"
#include "kvstore/engine/text_stream.h"
#include "kvstore/engine/weights_loader.h"

namespace kvstore::testing {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

json Post(const std::string& url, const std::string& path, const json& body, int* status) {
  auto r = engine::HttpPost(url, path, body.dump());
  if (!r.ok()) {
    *status = 0;
    return json{{"transport_error", r.status().ToString()}};
  }
  *status = r->status;
  json j = json::parse(r->body, nullptr, false);
  return j.is_discarded() ? json{{"raw", r->body}} : j;
}

json PostOk(const std::string& url, const std::string& path, const json& body) {
  int status = 0;
  json j = Post(url, path, body, &status);
  EXPECT_EQ(status, 200) << url << path << " " << body.dump() << " -> " << j.dump();
  return j;
}

// A streamed answer: every chunk's JSON, in order.
std::vector<json> Stream(const std::string& url, const std::string& path, json body) {
  body["stream"] = true;
  auto r = engine::HttpPost(url, path, body.dump());
  EXPECT_OK(r);
  std::vector<json> events;
  if (!r.ok()) return events;
  EXPECT_EQ(r->status, 200) << r->body;
  std::string sse = r->body;
  bool done = false;
  for (size_t end; (end = sse.find("\n\n")) != std::string::npos;) {
    std::string e = sse.substr(0, end);
    sse.erase(0, end + 2);
    EXPECT_EQ(e.rfind("data: ", 0), 0u) << e;
    if (e == "data: [DONE]") {
      done = true;
      continue;
    }
    events.push_back(json::parse(e.substr(6)));
  }
  EXPECT_TRUE(done) << "no [DONE]";
  return events;
}

// Per choice index: the concatenated text (or chat content) of a stream.
std::map<int, std::string> StreamedTexts(const std::vector<json>& events, bool chat) {
  std::map<int, std::string> out;
  for (const json& e : events)
    for (const json& c : e["choices"]) {
      std::string piece = chat ? c["delta"].value("content", "") : c.value("text", "");
      // No chunk splits a character.
      EXPECT_EQ(engine::CompleteUtf8Prefix(piece), piece.size());
      EXPECT_EQ(engine::SanitizeUtf8(piece), piece);
      out[c["index"].get<int>()] += piece;
    }
  return out;
}

// What the two engines must agree on: each choice's tokens, text, reason, logprobs.
json Essence(const json& answer) {
  json out = json::array();
  for (const json& c : answer["choices"]) {
    json e = {{"index", c["index"]},
              {"token_ids", c["token_ids"]},
              {"finish_reason", c["finish_reason"]},
              {"logprobs", c["logprobs"]}};
    e["text"] = c.contains("message") ? c["message"]["content"] : c["text"];
    out.push_back(e);
  }
  return out;
}

class OpenAiBuiltinTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string error;
    cluster_ = Cluster::Start(ClusterOptions{}, &error).release();
    ASSERT_NE(cluster_, nullptr) << error;
  }
  static void TearDownTestSuite() {
    if (!cluster_) return;
    std::string error;
    EXPECT_TRUE(cluster_->StopAll(&error)) << error;
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(cluster_, nullptr); }
  std::string both() { return cluster_->both()->url(); }
  std::string proxy() { return cluster_->proxy()->url(); }
  static Cluster* cluster_;
};
Cluster* OpenAiBuiltinTest::cluster_ = nullptr;

TEST_F(OpenAiBuiltinTest, ModelsOnEveryRoleAndMethodErrors) {
  for (EngineProcess* e :
       {cluster_->both(), cluster_->prefill(), cluster_->decode(), cluster_->proxy()}) {
    auto r = engine::HttpGet(e->url(), "/v1/models");
    ASSERT_OK(r);
    ASSERT_EQ(r->status, 200) << r->body;
    json m = json::parse(r->body);
    EXPECT_EQ(m["object"], "list");
    EXPECT_EQ(m["data"][0]["id"], "kvstore-tiny");
    EXPECT_EQ(m["data"][0]["object"], "model");
    for (const char* path : {"/v1/completions", "/v1/chat/completions"}) {
      auto g = engine::HttpGet(e->url(), path);
      ASSERT_OK(g);
      EXPECT_EQ(g->status, 405) << e->url() << path;
      json err = json::parse(g->body);
      EXPECT_EQ(err["error"]["code"], "method_not_allowed");
      EXPECT_NE(err["error"]["message"].get<std::string>().find("POST"), std::string::npos);
    }
    auto p = engine::HttpPost(e->url(), "/v1/models", "{}");
    ASSERT_OK(p);
    EXPECT_EQ(p->status, 405);
    auto n = engine::HttpGet(e->url(), "/v1/nothing");
    ASSERT_OK(n);
    EXPECT_EQ(n->status, 404);
  }
}

TEST_F(OpenAiBuiltinTest, ChatCompletionRoundTripEqualsTheColocatedEngine) {
  // As client.chat.completions.create(model=..., messages=[...], max_tokens=12,
  // temperature=0) sends it.
  json body = {{"messages",
                {{{"role", "system"}, {"content", "You are terse."}},
                 {{"role", "user"}, {"content", "Name a colour, then explain at length why."}}}},
               {"model", "kvstore-tiny"},
               {"max_tokens", 12},
               {"temperature", 0}};
  json colocated = PostOk(both(), "/v1/chat/completions", body);
  json disagg = PostOk(proxy(), "/v1/chat/completions", body);
  EXPECT_EQ(colocated["object"], "chat.completion");
  EXPECT_EQ(colocated["choices"][0]["message"]["role"], "assistant");
  EXPECT_TRUE(colocated["choices"][0]["message"]["content"].is_string());
  EXPECT_EQ(colocated["usage"]["completion_tokens"], 12);
  EXPECT_EQ(Essence(colocated), Essence(disagg));
  EXPECT_GT(disagg["kvstore"]["loaded_blocks"].get<int>(), 0);  // the KV came through the store
  // Streamed: chat.completion.chunk deltas, the role first, same content.
  for (const std::string& url : {both(), proxy()}) {
    auto events = Stream(url, "/v1/chat/completions", body);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events[0]["object"], "chat.completion.chunk");
    EXPECT_EQ(events[0]["choices"][0]["delta"]["role"], "assistant");
    EXPECT_EQ(StreamedTexts(events, true)[0],
              colocated["choices"][0]["message"]["content"].get<std::string>());
  }
}

TEST_F(OpenAiBuiltinTest, NChoicesArraysOfPromptsAndEchoEqualTheColocatedEngine) {
  json body = {{"model", "kvstore-tiny"},
               {"prompt", "Once upon a time, in a land far away,"},
               {"max_tokens", 8},
               {"n", 3},
               {"temperature", 0.9},
               {"top_p", 0.95},
               {"seed", 11}};
  json colocated = PostOk(both(), "/v1/completions", body);
  json disagg = PostOk(proxy(), "/v1/completions", body);
  ASSERT_EQ(colocated["choices"].size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(colocated["choices"][i]["index"], i);
  EXPECT_EQ(Essence(colocated), Essence(disagg));
  std::set<std::vector<int32_t>> distinct;
  for (const json& c : colocated["choices"])
    distinct.insert(c["token_ids"].get<std::vector<int32_t>>());
  EXPECT_GT(distinct.size(), 1u) << "choices sampled with seed + i should differ";
  EXPECT_EQ(colocated["usage"]["completion_tokens"], 24);

  json many = {{"model", "kvstore-tiny"},
               {"prompt",
                {"The first prompt, long enough to fill a block.", "A second one",
                 std::vector<int32_t>{256, 72, 105, 33, 32, 72, 101, 108, 108, 111, 44, 32, 119,
                                      111, 114, 108, 100, 33}}},
               {"max_tokens", 5},
               {"n", 2},
               {"echo", true}};
  json c2 = PostOk(both(), "/v1/completions", many);
  json d2 = PostOk(proxy(), "/v1/completions", many);
  ASSERT_EQ(c2["choices"].size(), 6u);
  EXPECT_EQ(Essence(c2), Essence(d2));
  EXPECT_EQ(c2["choices"][2]["text"].get<std::string>().rfind("A second one", 0), 0u);
  EXPECT_EQ(c2["choices"][5]["text"].get<std::string>().rfind("Hi! Hello, world!", 0), 0u);
  auto events = Stream(proxy(), "/v1/completions", many);
  auto texts = StreamedTexts(events, false);
  ASSERT_EQ(texts.size(), 6u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(texts[i], c2["choices"][i]["text"]) << i;
}

TEST_F(OpenAiBuiltinTest, StopTokenIdsAndStopStringsEndWithFinishReasonStop) {
  json body = {{"model", "kvstore-tiny"},
               {"prompt", "Tell me a story about a red fox"},
               {"max_tokens", 16},
               {"ignore_eos", true}};
  json free_run = PostOk(both(), "/v1/completions", body);
  const auto tokens = free_run["choices"][0]["token_ids"].get<std::vector<int32_t>>();
  ASSERT_EQ(tokens.size(), 16u);
  // stop_token_ids: ends at the first occurrence; the stop token's text is not emitted.
  const int32_t stop_id = tokens[6];
  const size_t at = std::find(tokens.begin(), tokens.end(), stop_id) - tokens.begin();
  json by_id = body;
  by_id["stop_token_ids"] = {stop_id};
  for (const std::string& url : {both(), proxy()}) {
    json a = PostOk(url, "/v1/completions", by_id);
    EXPECT_EQ(a["choices"][0]["finish_reason"], "stop") << url;
    EXPECT_EQ(a["choices"][0]["token_ids"].size(), at + 1) << url;
    std::vector<int32_t> before(tokens.begin(), tokens.begin() + at);
    std::string bytes;
    for (int32_t t : before) bytes += static_cast<char>(t);
    EXPECT_EQ(a["choices"][0]["text"], engine::SanitizeUtf8(bytes)) << url;
  }
  // stop strings: cut before the first match, which is not emitted.
  const std::string text = free_run["choices"][0]["text"];
  ASSERT_GT(text.size(), 8u);
  size_t from = engine::CompleteUtf8Prefix(text.substr(0, text.size() / 2));
  while (from > 0 && (static_cast<unsigned char>(text[from]) & 0xC0) == 0x80) --from;
  const unsigned char lead = static_cast<unsigned char>(text[from]);
  const std::string stop = text.substr(from, lead < 0x80   ? 1
                                             : lead < 0xE0 ? 2
                                             : lead < 0xF0 ? 3
                                                           : 4);  // one character
  json by_string = body;
  by_string["stop"] = {"never-produced-zzz", stop};
  for (const std::string& url : {both(), proxy()}) {
    json a = PostOk(url, "/v1/completions", by_string);
    EXPECT_EQ(a["choices"][0]["finish_reason"], "stop") << url;
    EXPECT_EQ(a["choices"][0]["text"], text.substr(0, text.find(stop))) << url << " stop=" << stop;
    auto events = Stream(url, "/v1/completions", by_string);
    EXPECT_EQ(StreamedTexts(events, false)[0], a["choices"][0]["text"]);
  }
}

TEST_F(OpenAiBuiltinTest, LogprobsAreConsistentWithTheGreedyChoice) {
  json body = {{"model", "kvstore-tiny"},
               {"prompt", "The capital of France is"},
               {"max_tokens", 6},
               {"logprobs", 3},
               {"temperature", 0}};
  json a = PostOk(both(), "/v1/completions", body);
  json d = PostOk(proxy(), "/v1/completions", body);
  EXPECT_EQ(Essence(a), Essence(d));
  const json& lp = a["choices"][0]["logprobs"];
  ASSERT_EQ(lp["token_logprobs"].size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    ASSERT_EQ(lp["top_logprobs"][i].size() >= 1, true);
    double best = -1e30;
    for (auto& [tok, v] : lp["top_logprobs"][i].items()) best = std::max(best, v.get<double>());
    // Greedy picks the most likely token. (Alternatives whose text is the
    // same, e.g. several invalid bytes shown as U+FFFD, share one key of the
    // completions format's dict, so compare with >=; the chat format below
    // lists them all.)
    EXPECT_GE(lp["token_logprobs"][i].get<double>(), best - 1e-6) << i;
    EXPECT_TRUE(lp["top_logprobs"][i].contains(lp["tokens"][i].get<std::string>())) << i;
    EXPECT_LT(lp["token_logprobs"][i].get<double>(), 0.0);
  }
  // Chat shape: content[i] with bytes and top_logprobs, best first.
  json chat = {{"model", "kvstore-tiny"},
               {"messages", {{{"role", "user"}, {"content", "hello"}}}},
               {"max_completion_tokens", 5},
               {"logprobs", true},
               {"top_logprobs", 4}};
  json c = PostOk(both(), "/v1/chat/completions", chat);
  json cd = PostOk(proxy(), "/v1/chat/completions", chat);
  EXPECT_EQ(Essence(c), Essence(cd));
  const json& content = c["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 5u);
  const auto ids = c["choices"][0]["token_ids"].get<std::vector<int32_t>>();
  for (size_t i = 0; i < 5; ++i) {
    ASSERT_EQ(content[i]["top_logprobs"].size(), 4u);
    EXPECT_EQ(content[i]["logprob"], content[i]["top_logprobs"][0]["logprob"]);
    EXPECT_EQ(content[i]["bytes"], content[i]["top_logprobs"][0]["bytes"]);
    EXPECT_EQ(content[i]["bytes"], json::array({ids[i]}));  // byte-level: token id == byte
  }
}

TEST_F(OpenAiBuiltinTest, MalformedFieldsGetA400NamingThemOnEveryEngine) {
  struct Bad {
    const char* path;
    json body;
    const char* param;
    int status = 400;
  };
  const std::vector<Bad> cases = {
      {"/v1/completions", {{"prompt", "x"}, {"max_tokens", "12"}}, "max_tokens"},
      {"/v1/completions", {{"prompt", "x"}, {"temperature", "warm"}}, "temperature"},
      {"/v1/completions", {{"prompt", "x"}, {"n", 0}}, "n"},
      {"/v1/completions", {{"prompt", "x"}, {"stop", {1, 2}}}, "stop"},
      {"/v1/completions", {{"prompt", "x"}, {"logprobs", 50}}, "logprobs"},
      {"/v1/completions", {{"prompt", "x"}, {"presence_penalty", 1.0}}, "presence_penalty"},
      {"/v1/completions",
       {{"prompt", "x"}, {"response_format", {{"type", "json_object"}}}},
       "response_format"},
      {"/v1/completions", {{"prompt", 5}}, "prompt"},
      {"/v1/completions", {{"prompt", "x"}, {"model", "gpt-4o"}}, "model", 404},
      {"/v1/chat/completions",
       {{"messages", {{{"role", "user"}}}}, {"max_tokens", 3}},
       "messages[0].content"},
      {"/v1/chat/completions",
       {{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"tools", {{{"type", "function"}}}}},
       "tools"},
      {"/v1/chat/completions",
       {{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"logit_bias", {{"5", 10}}}},
       "logit_bias"},
  };
  for (const std::string& url : {both(), proxy(), cluster_->decode()->url()}) {
    for (const Bad& b : cases) {
      int status = 0;
      json e = Post(url, b.path, b.body, &status);
      EXPECT_EQ(status, b.status) << url << b.path << " " << b.body.dump() << " -> " << e.dump();
      ASSERT_TRUE(e.contains("error")) << e.dump();
      EXPECT_EQ(e["error"]["param"], b.param) << b.body.dump();
      EXPECT_TRUE(e["error"]["message"].is_string());
      EXPECT_TRUE(e["error"].contains("type") && e["error"].contains("code"));
    }
  }
}

// ---- a checkpoint with a known answer and a real tokenizer ----

// Bytes of the answer cycle, all distinct: 'a', 中 (3 bytes), 😀 (4), é (2).
const std::string kCycle = "a\u4e2d\U0001F600\u00e9";
constexpr int32_t kBos = 256, kEndOfText = 257, kEot = 258;

// A 1-layer model whose attention and MLP weights are zero, so the residual
// stream is the embedding: with one-hot embeddings and an lm_head row per
// transition, the next token is next[current] exactly.
void WriteBigramCheckpoint(const fs::path& dir) {
  engine::ModelConfig c;
  c.name = "bigram";
  c.vocab_size = 272;
  c.hidden_size = 272;
  c.intermediate_size = 16;
  c.num_layers = 1;
  c.num_heads = 8;
  c.num_kv_heads = 2;
  c.head_dim = 34;
  c.bos_token_id = kBos;
  c.eos_token_ids = {kEndOfText, kEot};
  c.eos_token_id = kEndOfText;
  engine::ModelWeights w = engine::RandomWeights(c, 1);
  auto zero = [](std::vector<float>& v) { std::fill(v.begin(), v.end(), 0.0f); };
  auto one = [](std::vector<float>& v) { std::fill(v.begin(), v.end(), 1.0f); };
  for (auto& l : w.layers) {
    for (auto* v : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) zero(*v);
    one(l.attn_norm);
    one(l.mlp_norm);
  }
  one(w.final_norm);
  zero(w.embed);
  zero(w.lm_head);
  const int h = c.hidden_size;
  for (int t = 0; t < c.vocab_size; ++t) w.embed[size_t(t) * h + t] = 1.0f;
  std::vector<int32_t> next(c.vocab_size, static_cast<unsigned char>(kCycle[0]));
  for (size_t i = 0; i + 1 < kCycle.size(); ++i)
    next[static_cast<unsigned char>(kCycle[i])] = static_cast<unsigned char>(kCycle[i + 1]);
  next[static_cast<unsigned char>(kCycle.back())] = kEot;
  for (int t = 0; t < c.vocab_size; ++t) w.lm_head[size_t(next[t]) * h + t] = 1.0f;
  ASSERT_OK(engine::SaveHfCheckpoint(dir.string(), c, w, engine::DType::kF32));
}

// GPT-2's byte -> printable code point map, written out independently.
std::string ByteLevelChar(int b) {
  std::vector<int> bs;
  for (int x = '!'; x <= '~'; ++x) bs.push_back(x);
  for (int x = 0xA1; x <= 0xAC; ++x) bs.push_back(x);
  for (int x = 0xAE; x <= 0xFF; ++x) bs.push_back(x);
  int cp = b, n = 0;
  if (std::find(bs.begin(), bs.end(), b) == bs.end()) {
    for (int x = 0; x < 256; ++x) {
      if (std::find(bs.begin(), bs.end(), x) != bs.end()) continue;
      if (x == b) cp = 256 + n;
      ++n;
    }
  }
  std::string u;
  if (cp < 0x80) return std::string(1, char(cp));
  u += char(0xC0 | (cp >> 6));
  u += char(0x80 | (cp & 0x3F));
  return u;
}

// A Llama-3-style tokenizer.json: ids 0-255 are the bytes, then specials, then merges.
void WriteBpeTokenizer(const fs::path& dir) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[ByteLevelChar(b)] = b;
  vocab["he"] = 261;
  vocab["ll"] = 262;
  vocab["hell"] = 263;
  vocab[ByteLevelChar(' ') + "w"] = 264;
  json added = json::array();
  const char* specials[] = {"<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>",
                            "<|start_header_id|>", "<|end_header_id|>"};
  for (int i = 0; i < 5; ++i)
    added.push_back({{"id", 256 + i}, {"content", specials[i]}, {"special", true}});
  json split = {
      {"type", "Split"},
      {"pattern", {{"Regex", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+"}}},
      {"behavior", "Isolated"}};
  json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}};
  json pre = {{"type", "Sequence"}, {"pretokenizers", json::array({split, byte_level})}};
  json single = json::array();
  single.push_back({{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}});
  single.push_back({{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
  json post = {{"type", "TemplateProcessing"}, {"single", single}};
  json model = {{"type", "BPE"},
                {"ignore_merges", true},
                {"vocab", vocab},
                {"merges", json::array({"h e", "l l", "he ll", ByteLevelChar(' ') + " w"})}};
  json tok = json::object();
  tok["version"] = "1.0";
  tok["added_tokens"] = added;
  tok["normalizer"] = nullptr;
  tok["pre_tokenizer"] = pre;
  tok["post_processor"] = post;
  tok["decoder"] = {{"type", "ByteLevel"}};
  tok["model"] = model;
  std::ofstream(dir / "tokenizer.json") << tok.dump(1);
}

class OpenAiCheckpointTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ =
        new fs::path(fs::temp_directory_path() / ("kvstore-bigram-" + std::to_string(::getpid())));
    fs::remove_all(*dir_);
    fs::create_directories(*dir_);
    WriteBigramCheckpoint(*dir_);
    WriteBpeTokenizer(*dir_);
    ClusterOptions o;
    o.model_args = {"--model", dir_->string(), "--model-name", "bigram"};
    std::string error;
    cluster_ = Cluster::Start(o, &error).release();
    ASSERT_NE(cluster_, nullptr) << error;
  }
  static void TearDownTestSuite() {
    if (cluster_) {
      std::string error;
      EXPECT_TRUE(cluster_->StopAll(&error)) << error;
      delete cluster_;
      cluster_ = nullptr;
    }
    fs::remove_all(*dir_);
    delete dir_;
  }
  void SetUp() override { ASSERT_NE(cluster_, nullptr); }
  std::string both() { return cluster_->both()->url(); }
  std::string proxy() { return cluster_->proxy()->url(); }
  static Cluster* cluster_;
  static fs::path* dir_;
};
Cluster* OpenAiCheckpointTest::cluster_ = nullptr;
fs::path* OpenAiCheckpointTest::dir_ = nullptr;

// A text prompt long enough to put full blocks through the store.
const char* kPrompt = "hello world, hello world, hello world: the bigram model ignores all this";

TEST_F(OpenAiCheckpointTest, TextPromptThroughDisaggregationStopsAtAnEosOfTheList) {
  json body = {{"model", "bigram"}, {"prompt", kPrompt}, {"max_tokens", 20}};
  json colocated = PostOk(both(), "/v1/completions", body);
  json disagg = PostOk(proxy(), "/v1/completions", body);
  EXPECT_EQ(Essence(colocated), Essence(disagg));
  EXPECT_GT(disagg["kvstore"]["loaded_blocks"].get<int>(), 0);
  // Decode took the blocks through its registered staging region (zero-copy path).
  EXPECT_EQ(disagg["kvstore"]["registered_blocks"], disagg["kvstore"]["loaded_blocks"]);
  // The answer cycle up to <|eot_id|>, the second EOS id of the config.
  const json& c = colocated["choices"][0];
  EXPECT_EQ(c["text"], kCycle);
  EXPECT_EQ(c["finish_reason"], "stop");
  EXPECT_EQ(c["token_ids"].back(), kEot);
  EXPECT_EQ(c["token_ids"].size(), kCycle.size() + 1);
  // BPE: BOS, "hell" "o" "Ġw" "o" "r" "l" "d" ... (merges applied).
  // 59 = BOS + hell|o + Ġw|o|r|l|d + , + Ġ|hell|o ... (merges "h e", "l l", "he ll", "Ġ w").
  EXPECT_EQ(colocated["usage"]["prompt_tokens"].get<int>(), 59);
  json ignore = body;
  ignore["ignore_eos"] = true;
  ignore["max_tokens"] = 12;  // one cycle, <|eot_id|> (no text), then "a"
  json longer = PostOk(proxy(), "/v1/completions", ignore);
  EXPECT_EQ(longer["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(longer["choices"][0]["text"], kCycle + "a");
}

TEST_F(OpenAiCheckpointTest, StreamedMultiByteTextEqualsTheWholeText) {
  json body = {{"model", "bigram"}, {"prompt", kPrompt}, {"max_tokens", 30}, {"ignore_eos", true}};
  json whole = PostOk(both(), "/v1/completions", body);
  const std::string text = whole["choices"][0]["text"];
  // 11 tokens a cycle (10 bytes + <|eot_id|>): two cycles, then "a中😀".
  EXPECT_EQ(text, kCycle + kCycle + "a\u4e2d\U0001F600");
  for (const std::string& url : {both(), proxy()}) {
    auto events = Stream(url, "/v1/completions", body);
    EXPECT_EQ(StreamedTexts(events, false)[0], text) << url;
    // Tokens of 中 arrive one by one: some chunks carry a token but no text yet.
    int held = 0;
    for (const json& e : events)
      for (const json& ch : e["choices"])
        if (!ch["token_ids"].empty() && ch["text"] == "") ++held;
    EXPECT_GT(held, 0);
  }
}

TEST_F(OpenAiCheckpointTest, StopStringInsideAMultiByteRun) {
  json body = {{"model", "bigram"},
               {"prompt", kPrompt},
               {"max_tokens", 30},
               {"ignore_eos", true},
               {"stop", "\U0001F600"}};
  for (const std::string& url : {both(), proxy()}) {
    json a = PostOk(url, "/v1/completions", body);
    EXPECT_EQ(a["choices"][0]["text"], "a\u4e2d") << url;
    EXPECT_EQ(a["choices"][0]["finish_reason"], "stop");
    EXPECT_EQ(StreamedTexts(Stream(url, "/v1/completions", body), false)[0], "a\u4e2d");
  }
}

TEST_F(OpenAiCheckpointTest, ChatUsesTheLlama3TemplateOfTheVocabulary) {
  json body = {{"model", "bigram"},
               {"messages", {{{"role", "user"}, {"content", "hello world"}}}},
               {"max_tokens", 20}};
  json colocated = PostOk(both(), "/v1/chat/completions", body);
  json disagg = PostOk(proxy(), "/v1/chat/completions", body);
  EXPECT_EQ(Essence(colocated), Essence(disagg));
  EXPECT_EQ(colocated["choices"][0]["message"]["content"], kCycle);
  EXPECT_EQ(colocated["choices"][0]["finish_reason"], "stop");
  // <|begin_of_text|> <|start_header_id|> u s e r <|end_header_id|> \n \n hell o Ġw o r l d
  // <|eot_id|> <|start_header_id|> a s s i s t a n t <|end_header_id|> \n \n
  EXPECT_EQ(colocated["usage"]["prompt_tokens"].get<int>(), 30);
}

}  // namespace
}  // namespace kvstore::testing
