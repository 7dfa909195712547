// Disaggregated serving end to end: kvstored, a prefill engine, a decode
// engine and the proxy on loopback, checked token for token against a
// colocated (--role both) engine, with the store left empty afterwards and
// every process exiting cleanly.
#include <gtest/gtest.h>

#include "status_matchers.h"

#include <signal.h>

#include <future>
#include <thread>

#include "cluster.h"
#include "kvstore/engine/http_client.h"

namespace kvstore::testing {
namespace {

constexpr int kBlock = 16;  // block size of the built-in model

// Deterministic byte tokens; salt varies the content.
std::vector<int32_t> Tokens(int n, int salt) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back((i * 31 + salt * 17 + 7) % 256);
  return t;
}

struct Case {
  std::string name;
  std::vector<int32_t> prompt;
  int max_tokens;
  float temperature = 0;
  uint64_t seed = 0;
  bool stream = false;
};

std::vector<Case> Cases() {
  std::vector<Case> cases;
  int salt = 0;
  // Lengths below, at and above block multiples.
  for (int n : {1, 5, 15, 16, 17, 31, 32, 33, 47, 48, 49, 80, 127, 128, 129}) {
    cases.push_back({"len" + std::to_string(n), Tokens(n, ++salt), 8 + n % 5, 0, 0, n % 2 == 0});
  }
  // Shared prefixes: a 40-token "system prompt" (2 full blocks + 8) and
  // different questions, some ending on a block boundary.
  const std::vector<int32_t> system = Tokens(40, 99);
  for (int q : {0, 8, 9, 24, 30, 56}) {
    std::vector<int32_t> p = system;
    auto tail = Tokens(q, 200 + q);
    p.insert(p.end(), tail.begin(), tail.end());
    cases.push_back({"shared+" + std::to_string(q), p, 10, 0, 0, q % 16 == 8});
  }
  // Sampling with a seed must reproduce as well.
  cases.push_back({"sampled", Tokens(70, 555), 12, 0.8f, 42, true});
  cases.push_back({"sampled-topk", Tokens(33, 556), 12, 1.0f, 7, false});
  return cases;
}

class DisaggTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    cluster_ = Cluster::Start(ClusterOptions{}, &error);
    ASSERT_NE(cluster_, nullptr) << error;
  }
  void TearDown() override {
    if (!cluster_) return;
    // No process leaked, and each one exits 0 on SIGTERM.
    std::string error;
    EXPECT_TRUE(cluster_->StopAll(&error)) << error;
    EXPECT_FALSE(cluster_->proxy()->running());
    EXPECT_FALSE(cluster_->decode()->running());
    EXPECT_FALSE(cluster_->prefill()->running());
    EXPECT_FALSE(cluster_->both()->running());
    EXPECT_FALSE(cluster_->store().running());
  }

  // drop_select consumed every block: the store holds nothing of them.
  void ExpectStoreDrained() {
    std::optional<double> entries;
    for (int i = 0; i < 100; ++i) {
      entries = cluster_->store().Metric("kvstore_entries", {{"tier", "host"}});
      if (entries && *entries == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_TRUE(entries.has_value()) << cluster_->store().ScrapeMetrics();
    EXPECT_EQ(*entries, 0) << "blocks left in kvstored after every decode finished";
  }

  std::vector<int32_t> Reference(const Case& c) {
    Completion r = Complete(cluster_->both()->url(),
                            TokenPromptBody(c.prompt, c.max_tokens, c.temperature, c.seed), false);
    EXPECT_EQ(r.status, 200) << c.name << ": " << r.error;
    EXPECT_EQ(static_cast<int>(r.tokens.size()), c.max_tokens) << c.name;
    return r.tokens;
  }

  std::unique_ptr<Cluster> cluster_;
};

TEST_F(DisaggTest, EveryPromptMatchesTheColocatedEngineTokenForToken) {
  const std::vector<Case> cases = Cases();
  ASSERT_GE(cases.size(), 20u);
  int full_blocks = 0;
  for (const Case& c : cases) {
    const std::vector<int32_t> want = Reference(c);
    Completion got =
        Complete(cluster_->proxy()->url(),
                 TokenPromptBody(c.prompt, c.max_tokens, c.temperature, c.seed), c.stream);
    ASSERT_EQ(got.status, 200) << c.name << ": " << got.error;
    EXPECT_EQ(got.tokens, want) << c.name << (c.stream ? " (streamed)" : "");
    full_blocks += static_cast<int>(c.prompt.size()) / kBlock;
  }
  // Every full block travelled through the store, and none was missed.
  const std::string decode = cluster_->decode()->url();
  EXPECT_EQ(EngineMetric(decode, "kvstore_engine_kv_blocks_total", "event=\"loaded\""),
            full_blocks);
  EXPECT_EQ(EngineMetric(decode, "kvstore_engine_kv_misses_total"), -1) << "no miss recorded";
  EXPECT_GT(EngineMetric(cluster_->prefill()->url(), "kvstore_engine_kv_bytes_pushed_total"), 0);
  ExpectStoreDrained();
}

TEST_F(DisaggTest, ConcurrentRequestsWithASharedPrefixMatchAndDrainTheStore) {
  // 3 full shared blocks, then distinct tails: while one request's decode
  // takes the shared blocks, another's prefill may be retaining them.
  const std::vector<int32_t> prefix = Tokens(48, 4242);
  std::vector<Case> cases;
  for (int i = 0; i < 10; ++i) {
    std::vector<int32_t> p = prefix;
    auto tail = Tokens(3 + 7 * i, 300 + i);
    p.insert(p.end(), tail.begin(), tail.end());
    cases.push_back({"concurrent" + std::to_string(i), p, 6 + i % 3, 0, 0, i % 2 == 0});
  }
  cases.push_back({"concurrent-exact", prefix, 5, 0, 0, false});
  std::vector<std::vector<int32_t>> want;
  for (const Case& c : cases) want.push_back(Reference(c));

  for (int round = 0; round < 2; ++round) {
    std::vector<std::future<Completion>> got;
    for (const Case& c : cases)
      got.push_back(std::async(std::launch::async, [&, c] {
        return Complete(cluster_->proxy()->url(),
                        TokenPromptBody(c.prompt, c.max_tokens, c.temperature, c.seed), c.stream);
      }));
    for (size_t i = 0; i < cases.size(); ++i) {
      Completion r = got[i].get();
      ASSERT_EQ(r.status, 200) << cases[i].name << ": " << r.error;
      EXPECT_EQ(r.tokens, want[i]) << cases[i].name << " round " << round;
    }
  }
  // The prefill engine reused the shared blocks rather than computing them again.
  const std::string prefill = cluster_->prefill()->url();
  double reused =
      std::max(0.0, EngineMetric(prefill, "kvstore_engine_kv_blocks_total", "event=\"reused\""));
  double local =
      std::max(0.0, EngineMetric(prefill, "kvstore_engine_kv_blocks_total", "event=\"local\""));
  EXPECT_GT(reused + local, 0);
  EXPECT_EQ(EngineMetric(cluster_->decode()->url(), "kvstore_engine_kv_misses_total"), -1);
  ExpectStoreDrained();
}

TEST_F(DisaggTest, OverlappingProxySendsDecodeBeforePrefillAnswersAndStillMatches) {
  std::string error;
  auto overlap =
      EngineProcess::Start("proxy --overlap",
                           {"--role", "proxy", "--overlap", "--log-level", "warn", "--prefill",
                            cluster_->prefill()->url(), "--decode", cluster_->decode()->url()},
                           &error);
  ASSERT_NE(overlap, nullptr) << error;
  std::vector<Case> cases = Cases();
  cases.resize(12);
  std::vector<std::future<Completion>> got;
  std::vector<std::vector<int32_t>> want;
  for (const Case& c : cases) want.push_back(Reference(c));
  for (const Case& c : cases)
    got.push_back(std::async(std::launch::async, [&, c] {
      return Complete(overlap->url(),
                      TokenPromptBody(c.prompt, c.max_tokens, c.temperature, c.seed), c.stream);
    }));
  for (size_t i = 0; i < cases.size(); ++i) {
    Completion r = got[i].get();
    ASSERT_EQ(r.status, 200) << cases[i].name << ": " << r.error;
    EXPECT_EQ(r.tokens, want[i]) << cases[i].name;
  }
  EXPECT_EQ(EngineMetric(cluster_->decode()->url(), "kvstore_engine_kv_misses_total"), -1);
  // Prefill answers after decode may have finished; the store still drains.
  ExpectStoreDrained();
  EXPECT_EQ(overlap->StopWith(SIGTERM), 0);
}

TEST_F(DisaggTest, ProxyRoundRobinsOverTwoPrefillAndTwoDecodeEngines) {
  std::string error;
  const std::vector<std::string> store = {"--store", cluster_->store().address(), "--log-level",
                                          "warn"};
  auto with = [&](std::vector<std::string> a) {
    a.insert(a.end(), store.begin(), store.end());
    return a;
  };
  auto prefill2 = EngineProcess::Start("prefill2", with({"--role", "prefill"}), &error);
  ASSERT_NE(prefill2, nullptr) << error;
  auto decode2 = EngineProcess::Start("decode2", with({"--role", "decode"}), &error);
  ASSERT_NE(decode2, nullptr) << error;
  auto proxy = EngineProcess::Start("proxy 2P2D",
                                    {"--role", "proxy", "--log-level", "warn", "--prefill",
                                     cluster_->prefill()->url() + "," + prefill2->url(), "--decode",
                                     cluster_->decode()->url() + "," + decode2->url()},
                                    &error);
  ASSERT_NE(proxy, nullptr) << error;
  std::vector<Case> cases = Cases();
  cases.resize(8);
  for (const Case& c : cases) {
    const std::vector<int32_t> want = Reference(c);
    Completion r = Complete(
        proxy->url(), TokenPromptBody(c.prompt, c.max_tokens, c.temperature, c.seed), c.stream);
    ASSERT_EQ(r.status, 200) << c.name << ": " << r.error;
    EXPECT_EQ(r.tokens, want) << c.name;
  }
  for (EngineProcess* e : {cluster_->prefill(), prefill2.get(), cluster_->decode(), decode2.get()})
    EXPECT_EQ(EngineMetric(e->url(), "kvstore_engine_requests_total", "result=\"ok\""), 4)
        << e->url() << " did not get its half of the requests";
  ExpectStoreDrained();
  for (auto* e : {proxy.get(), decode2.get(), prefill2.get()}) EXPECT_EQ(e->StopWith(SIGTERM), 0);
}

TEST_F(DisaggTest, HealthMetricsAndBadRequests) {
  for (EngineProcess* p :
       {cluster_->both(), cluster_->prefill(), cluster_->decode(), cluster_->proxy()}) {
    auto h = engine::HttpGet(p->url(), "/health");
    ASSERT_OK(h);
    EXPECT_EQ(h->status, 200) << h->body;
    auto m = engine::HttpGet(p->url(), "/metrics");
    ASSERT_OK(m);
    EXPECT_NE(m->body.find("kvstore_engine_requests_total"), std::string::npos);
  }
  auto bad = engine::HttpPost(cluster_->proxy()->url(), "/v1/completions",
                              R"({"prompt": [1, 2, 99999], "max_tokens": 3})");
  ASSERT_OK(bad);
  EXPECT_EQ(bad->status, 400) << bad->body;
  EXPECT_NE(bad->body.find("outside the vocabulary"), std::string::npos) << bad->body;
  auto text = engine::HttpPost(
      cluster_->proxy()->url(), "/v1/completions",
      R"({"prompt": "Hello, kvstore! Tell me about disaggregation.", "max_tokens": 4})");
  ASSERT_OK(text);
  EXPECT_EQ(text->status, 200) << text->body;
  auto none = engine::HttpGet(cluster_->both()->url(), "/nope");
  ASSERT_OK(none);
  EXPECT_EQ(none->status, 404);
}

}  // namespace
}  // namespace kvstore::testing
