// The engine's request parsing and small helpers, without processes.
#include <gtest/gtest.h>

#include "kvstore/engine/completion_api.h"
#include "kvstore/engine/engine_options.h"
#include "kvstore/engine/http_client.h"
#include "kvstore/engine/proxy.h"
#include "kvstore/engine/tokenizer.h"

namespace kvstore::engine {
namespace {

TEST(CompletionApi, ParsesTextAndTokenPrompts) {
  auto r = ParseCompletionRequest(
      R"({"prompt":"hi","max_tokens":3,"temperature":0.5,"seed":9,"stream":true})", 258, true, 100);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->prompt, (std::vector<int32_t>{ByteTokenizer::kBos, 'h', 'i'}));
  EXPECT_EQ(r->max_tokens, 3);
  EXPECT_FLOAT_EQ(r->sampling.temperature, 0.5f);
  EXPECT_EQ(r->sampling.seed, 9u);
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->remote_prefill);
  auto t = ParseCompletionRequest(
      R"({"prompt":[1,2,3],"ignore_eos":true,"kv_transfer_params":{"remote_prefill":false}})", 258,
      false, 100);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->prompt, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_FALSE(t->stop_at_eos);
  EXPECT_FALSE(t->remote_prefill);
}

TEST(CompletionApi, RejectsBadRequestsWithAReason) {
  struct Bad {
    const char* body;
    const char* says;
  };
  for (const Bad& b :
       {Bad{"nope", "not a JSON object"}, Bad{"{}", "missing \"prompt\""},
        Bad{R"({"prompt":[]})", "empty"}, Bad{R"({"prompt":[300]})", "outside the vocabulary"},
        Bad{R"({"prompt":[1],"max_tokens":0})", "max_tokens"},
        Bad{R"({"prompt":[1],"max_tokens":"x"})", "bad field type"},
        Bad{R"({"prompt":[1],"temperature":-1})", "temperature"},
        Bad{R"({"prompt":"text"})", "no text tokenizer"}}) {
    auto r = ParseCompletionRequest(b.body, 258,
                                    std::string(b.body).find("text") == std::string::npos, 100);
    ASSERT_FALSE(r.ok()) << b.body;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(b.says), std::string::npos) << r.status().message();
  }
}

TEST(CompletionApi, StreamEventsAndInvalidUtf8) {
  std::string e = StreamTokenEvent("id", "m", 255, std::string(1, '\xff'));
  EXPECT_EQ(e.rfind("data: {", 0), 0u);
  EXPECT_NE(e.find("\"token_ids\":[255]"), std::string::npos);
  CompletionResult r;
  r.tokens = {1, 2};
  r.finish_reason = "length";
  std::string f = StreamFinalEvents("id", "m", r);
  EXPECT_NE(f.find("data: [DONE]\n\n"), std::string::npos);
  EXPECT_NE(f.find("\"completion_tokens\":2"), std::string::npos);
}

TEST(EngineOptions, RolesPoliciesAndUrls) {
  EXPECT_EQ(*ParseRole("decode"), Role::kDecode);
  EXPECT_FALSE(ParseRole("decoder").ok());
  EXPECT_EQ(*ParseKvMissPolicy("fail"), KvMissPolicy::kFail);
  EXPECT_FALSE(ParseKvMissPolicy("retry").ok());
  std::string host, port;
  ASSERT_TRUE(ParseHttpUrl("http://127.0.0.1:8100/v1", &host, &port).ok());
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, "8100");
  EXPECT_TRUE(ParseHttpUrl("localhost:9", &host, &port).ok());
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
