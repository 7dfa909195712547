// The engine's request parsing and small helpers, without processes.
#include <gtest/gtest.h>

#include "status_matchers.h"

#include "kvstore/engine/completion_api.h"
#include "kvstore/engine/engine_options.h"
#include "kvstore/engine/http_client.h"
#include "kvstore/engine/proxy.h"
#include "kvstore/engine/text_stream.h"
#include "kvstore/engine/tokenizer.h"

#include <cmath>

#include <nlohmann/json.hpp>

namespace kvstore::engine {
namespace {

ApiContext Ctx(const Tokenizer* tok) {
  ApiContext c;
  c.vocab_size = 258;
  c.tokenizer = tok;
  c.max_tokens_limit = 100;
  c.model_name = "m";
  return c;
}

TEST(CompletionApi, ParsesTextAndTokenPrompts) {
  ByteTokenizer tok;
  ApiError err;
  auto r = ParseRequest(
      Endpoint::kCompletions,
      R"({"model":"m","prompt":"hi","max_tokens":3,"temperature":0.5,"seed":9,"stream":true,)"
      R"("top_p":0.9,"n":2,"stop":["x","yz"],"stop_token_ids":[7],"logprobs":3,"user":"u"})",
      Ctx(&tok), &err);
  ASSERT_TRUE(r) << err.message;
  ASSERT_EQ(r->size(), 1u);
  const CompletionRequest& q = r->front();
  EXPECT_EQ(q.prompt, (std::vector<int32_t>{ByteTokenizer::kBos, 'h', 'i'}));
  EXPECT_EQ(q.max_tokens, 3);
  EXPECT_FLOAT_EQ(q.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(q.sampling.top_p, 0.9f);
  EXPECT_EQ(q.sampling.seed, 9u);
  EXPECT_EQ(q.n, 2);
  EXPECT_EQ(q.stop, (std::vector<std::string>{"x", "yz"}));
  EXPECT_EQ(q.stop_token_ids, (std::vector<int32_t>{7}));
  EXPECT_EQ(q.logprobs, 3);
  EXPECT_TRUE(q.stream);
  EXPECT_TRUE(q.remote_prefill);
  auto t = ParseRequest(
      Endpoint::kCompletions,
      R"({"prompt":[1,2,3],"ignore_eos":true,"kv_transfer_params":{"remote_prefill":false}})",
      Ctx(nullptr), &err);
  ASSERT_TRUE(t) << err.message;
  EXPECT_EQ(t->front().prompt, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_FALSE(t->front().stop_at_eos);
  EXPECT_FALSE(t->front().remote_prefill);
}

TEST(CompletionApi, ArraysOfPromptsNumberTheirChoices) {
  ByteTokenizer tok;
  ApiError err;
  auto r = ParseRequest(Endpoint::kCompletions,
                        R"({"prompt":["ab",[5,6,7],"c"],"n":2,"echo":true})", Ctx(&tok), &err);
  ASSERT_TRUE(r) << err.message;
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[1].prompt, (std::vector<int32_t>{5, 6, 7}));
  EXPECT_EQ((*r)[2].choice_base, 4);
  EXPECT_EQ((*r)[0].echo_text, "ab");
  EXPECT_EQ((*r)[1].echo_text, "\x05\x06\x07");
}

TEST(CompletionApi, ChatMessagesRenderWithTheTemplate) {
  ByteTokenizer tok;
  ApiError err;
  auto r = ParseRequest(Endpoint::kChat,
                        R"({"messages":[{"role":"system","content":"be brief"},)"
                        R"({"role":"user","content":[{"type":"text","text":"hi"}]}],)"
                        R"("max_completion_tokens":4,"logprobs":true,"top_logprobs":2})",
                        Ctx(&tok), &err);
  ASSERT_TRUE(r) << err.message;
  EXPECT_EQ(r->front().prompt,
            ByteTokenizer::Encode("system: be brief\nuser: hi\nassistant:", /*add_bos=*/true));
  EXPECT_EQ(r->front().max_tokens, 4);
  EXPECT_EQ(r->front().logprobs, 2);
  RenderedChat l3 = RenderChat(ChatTemplate::kLlama3, {{"user", "hi"}});
  EXPECT_EQ(l3.text,
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(l3.stop_tokens, (std::vector<std::string>{"<|eot_id|>"}));
}

TEST(CompletionApi, RejectsBadRequestsNamingTheField) {
  struct Bad {
    Endpoint endpoint;
    const char* body;
    const char* param;
    const char* says;
    int status = 400;
  };
  const Endpoint C = Endpoint::kCompletions, H = Endpoint::kChat;
  for (const Bad& b : {
           Bad{C, "nope", "", "not a JSON object"},
           Bad{C, "{}", "prompt", "missing \"prompt\""},
           Bad{C, R"({"prompt":[]})", "prompt", "empty"},
           Bad{C, R"({"prompt":[300]})", "prompt", "outside the vocabulary"},
           Bad{C, R"({"prompt":[1],"max_tokens":0})", "max_tokens", "max_tokens"},
           Bad{C, R"({"prompt":[1],"max_tokens":"x"})", "max_tokens", "must be an integer"},
           Bad{C, R"({"prompt":[1],"temperature":-1})", "temperature", "temperature"},
           Bad{C, R"({"prompt":[1],"temperature":"hot"})", "temperature", "must be a number"},
           Bad{C, R"({"prompt":[1],"top_p":0})", "top_p", "top_p"},
           Bad{C, R"({"prompt":[1],"n":0})", "n", "\"n\""},
           Bad{C, R"({"prompt":[1],"stream":"yes"})", "stream", "true or false"},
           Bad{C, R"({"prompt":[1],"stop":[1]})", "stop", "\"stop\""},
           Bad{C, R"({"prompt":[1],"stop_token_ids":[999]})", "stop_token_ids", "vocabulary"},
           Bad{C, R"({"prompt":[1],"logprobs":21})", "logprobs", "logprobs"},
           Bad{C, R"({"prompt":[1],"logprobs":1,"echo":true})", "echo", "echo"},
           Bad{C, R"({"prompt":[1],"seed":"s"})", "seed", "seed"},
           Bad{C, R"({"prompt":[1],"best_of":3})", "best_of", "best_of"},
           Bad{C, R"({"prompt":[1],"frequency_penalty":0.5})", "frequency_penalty", "only"},
           Bad{C, R"({"prompt":[1],"logit_bias":{"1":5}})", "logit_bias", "only"},
           Bad{C, R"({"prompt":[1],"suffix":"x"})", "suffix", "only"},
           Bad{C, R"({"prompt":[1],"min_p":0.1})", "min_p", "unsupported field"},
           Bad{C, R"({"prompt":[1],"model":"gpt-4"})", "model", "does not exist", 404},
           Bad{C, R"({"prompt":[1],"stream_options":{"include_usage":true}})", "stream_options",
               "stream"},
           Bad{H, R"({"messages":"hi"})", "messages", "non-empty array"},
           Bad{H, R"({"messages":[{"role":"tool","content":"x"}]})", "messages[0].role",
               "not supported"},
           Bad{H, R"({"messages":[{"role":"user","content":"x","name":"a"}]})", "messages[0].name",
               "not supported"},
           Bad{H, R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})",
               "messages[0].content", "images"},
           Bad{H, R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]})",
               "tools", "no tool calling"},
           Bad{H, R"({"messages":[{"role":"user","content":"x"}],"top_logprobs":2})",
               "top_logprobs", "needs"},
           Bad{H, R"({"messages":[{"role":"user","content":"x"}],"echo":true})", "echo",
               "unsupported field"},
       }) {
    ByteTokenizer tok;
    ApiError err;
    auto r = ParseRequest(b.endpoint, b.body, Ctx(&tok), &err);
    ASSERT_FALSE(r) << b.body;
    EXPECT_EQ(err.http_status, b.status) << b.body;
    EXPECT_EQ(err.param, b.param) << b.body;
    EXPECT_NE(err.message.find(b.says), std::string::npos) << b.body << " -> " << err.message;
    auto j = nlohmann::json::parse(ErrorJson(err));
    for (const char* k : {"message", "type", "param", "code"})
      EXPECT_TRUE(j["error"].contains(k)) << k;
  }
  ApiError err;
  EXPECT_FALSE(ParseRequest(Endpoint::kCompletions, R"({"prompt":"text"})", Ctx(nullptr), &err));
  EXPECT_NE(err.message.find("no text tokenizer"), std::string::npos);
  EXPECT_FALSE(
      ParseRequest(Endpoint::kCompletions, R"({"prompt":[1],"stop":"x"})", Ctx(nullptr), &err));
  EXPECT_EQ(err.param, "stop");
}

TEST(TextStream, NeverSplitsACharacterAndEqualsTheWholeText) {
  const std::string text = "a\u00e9\u4e2d\U0001F600z";  // 1, 2, 3, 4-byte characters
  TextStream s;
  std::string streamed;
  bool stopped = false;
  for (char c : text) {
    std::string d = s.Add(std::string(1, c), &stopped);
    EXPECT_EQ(CompleteUtf8Prefix(d), d.size());
    EXPECT_EQ(SanitizeUtf8(d), d);
    streamed += d;
  }
  streamed += s.Finish();
  EXPECT_EQ(streamed, text);
  EXPECT_FALSE(stopped);
  // An invalid byte becomes U+FFFD; a truncated character at the end too.
  TextStream bad;
  std::string out = bad.Add("x\xff", &stopped);
  out += bad.Add("\xe4\xb8", &stopped);
  EXPECT_EQ(out, "x\xef\xbf\xbd");
  EXPECT_EQ(bad.Finish(), "\xef\xbf\xbd\xef\xbf\xbd");
}

TEST(TextStream, StopStringsAreHeldBackAndCut) {
  TextStream s({"END", "\n\n"});
  bool stopped = false;
  std::string out;
  for (const char* piece : {"ab", "cE", "N", "x"}) out += s.Add(piece, &stopped);
  EXPECT_EQ(out, "abcENx");  // "E", then "EN", were held back until "x" ruled out "END"
  EXPECT_FALSE(stopped);
  out += s.Add("yE", &stopped);
  out += s.Add("ND tail", &stopped);
  EXPECT_TRUE(stopped);
  EXPECT_EQ(out, "abcENxy");
  EXPECT_EQ(s.Finish(), "");
  TextStream t({"\n\n"});
  EXPECT_EQ(t.Add("a\n", &stopped), "a");
  EXPECT_EQ(t.Finish(), "\n");  // at the end, what was held is released
}

TEST(CompletionApi, LogprobsAreLogSoftmax) {
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f};
  TokenLogprob t = TokenLogprobOf(logits, 2, 2);
  const double z = std::log(std::exp(1.0) + std::exp(3.0) + std::exp(2.0));
  EXPECT_NEAR(t.logprob, 2.0 - z, 1e-6);
  ASSERT_EQ(t.top.size(), 2u);
  EXPECT_EQ(t.top[0].first, 1);
  EXPECT_NEAR(t.top[0].second, 3.0 - z, 1e-6);
  EXPECT_EQ(t.top[1].first, 2);
}

TEST(CompletionApi, StreamChunksAndTheClosingEvents) {
  ResponseContext ctx;
  ctx.endpoint = Endpoint::kChat;
  ctx.id = "id";
  ChoiceDelta d;
  d.index = 1;
  d.tokens = {255};
  d.text = "x";
  d.first = true;
  std::string e = StreamChunk(ctx, d);
  EXPECT_EQ(e.rfind("data: {", 0), 0u);
  auto j = nlohmann::json::parse(e.substr(6));
  EXPECT_EQ(j["object"], "chat.completion.chunk");
  EXPECT_EQ(j["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["delta"]["content"], "x");
  EXPECT_EQ(j["choices"][0]["index"], 1);
  CompletionResult r;
  r.choices.resize(1);
  r.choices[0].tokens = {1, 2};
  r.choices[0].finish_reason = "length";
  std::string f = StreamFinalEvents(ctx, {r});
  EXPECT_NE(f.find("data: [DONE]\n\n"), std::string::npos);
  EXPECT_NE(f.find("\"completion_tokens\":2"), std::string::npos);
  auto m = nlohmann::json::parse(ModelsJson("kvstore-tiny"));
  EXPECT_EQ(m["object"], "list");
  EXPECT_EQ(m["data"][0]["id"], "kvstore-tiny");
}

TEST(EngineOptions, RolesPoliciesAndUrls) {
  EXPECT_EQ(*ParseRole("decode"), Role::kDecode);
  EXPECT_FALSE(ParseRole("decoder").ok());
  EXPECT_EQ(*ParseKvMissPolicy("fail"), KvMissPolicy::kFail);
  EXPECT_FALSE(ParseKvMissPolicy("retry").ok());
  std::string host, port;
  ASSERT_OK(ParseHttpUrl("http://127.0.0.1:8100/v1", &host, &port));
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, "8100");
  EXPECT_OK(ParseHttpUrl("localhost:9", &host, &port));
  EXPECT_FALSE(ParseHttpUrl("https://x:1", &host, &port).ok());
  EXPECT_FALSE(ParseHttpUrl("http://nohost", &host, &port).ok());
}

TEST(HttpClient, MetricValueReadsOneSample) {
  const std::string page =
      "# HELP x\nkvstore_entries{tier=\"host\"} 3\nkvstore_entries_total 9\n"
      "kvstore_engine_kv_misses_total{role=\"decode\",reason=\"timeout\"} 2\n";
  EXPECT_EQ(MetricValue(page, "kvstore_entries"), 3);
  EXPECT_EQ(MetricValue(page, "kvstore_entries_total"), 9);
  EXPECT_EQ(MetricValue(page, "kvstore_engine_kv_misses_total", "reason=\"timeout\""), 2);
  EXPECT_EQ(MetricValue(page, "kvstore_engine_kv_misses_total", "reason=\"x\""), -1);
  EXPECT_EQ(MetricValue(page, "absent"), -1);
}

}  // namespace
}  // namespace kvstore::engine
