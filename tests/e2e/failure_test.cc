// Failure paths of disaggregated serving: a prefill engine that dies
// mid-request (decode recomputes, or fails cleanly under --on-kv-miss fail),
// a proxy whose prefill engine is gone, and blocks nobody takes expiring
// from the store by TTL.
#include <gtest/gtest.h>

#include <signal.h>

#include <future>
#include <thread>

#include "cluster.h"
#include "kvstore/engine/http_client.h"

namespace kvstore::testing {
namespace {

using namespace std::chrono_literals;

std::vector<int32_t> Tokens(int n, int salt) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back((i * 13 + salt * 7 + 3) % 256);
  return t;
}

std::unique_ptr<Cluster> StartCluster(const ClusterOptions& o) {
  std::string error;
  auto c = Cluster::Start(o, &error);
  EXPECT_NE(c, nullptr) << error;
  return c;
}

void ExpectCleanStop(Cluster& c) {
  std::string error;
  EXPECT_TRUE(c.StopAll(&error)) << error;
}

double StoreEntries(Cluster& c) {
  return c.store().Metric("kvstore_entries", {{"tier", "host"}}).value_or(-1);
}

// Waits until prefill has stored at least one block of the prompt, so the
// kill lands mid-request; returns false if it never did.
bool WaitForFirstBlock(Cluster& c) {
  for (int i = 0; i < 400; ++i) {
    if (StoreEntries(c) > 0) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

// A prompt long enough (~1 s of prefill on one core) to be killed mid-way.
constexpr int kLongPrompt = 3000;

TEST(FailureTest, PrefillKilledMidRequestDecodeRecomputesTheSameAnswer) {
  ClusterOptions o;
  o.proxy = false;
  o.decode_args = {"--kv-timeout", "1500ms"};
  auto c = StartCluster(o);
  ASSERT_NE(c, nullptr);
  const std::string body = TokenPromptBody(Tokens(kLongPrompt, 1), 6);
  const Completion want = Complete(c->both()->url(), body, false);
  ASSERT_EQ(want.status, 200) << want.error;

  auto prefill =
      std::async(std::launch::async, [&] { return Complete(c->prefill()->url(), body, false); });
  auto decode =
      std::async(std::launch::async, [&] { return Complete(c->decode()->url(), body, true); });
  ASSERT_TRUE(WaitForFirstBlock(*c)) << "prefill never stored a block";
  EXPECT_EQ(c->prefill()->StopWith(SIGKILL), 128 + SIGKILL);
  Completion p = prefill.get();
  EXPECT_NE(p.status, 200) << "the killed prefill cannot have answered";

  Completion got = decode.get();
  ASSERT_EQ(got.status, 200) << got.error;
  EXPECT_EQ(got.tokens, want.tokens);
  const std::string d = c->decode()->url();
  EXPECT_EQ(EngineMetric(d, "kvstore_engine_kv_misses_total", "reason=\"timeout\""), 1);
  // The leading blocks the prefill did store were taken, not stranded.
  EXPECT_GT(EngineMetric(d, "kvstore_engine_kv_blocks_total", "event=\"loaded\""), 0);
  EXPECT_GT(EngineMetric(d, "kvstore_engine_kv_blocks_total", "event=\"recomputed\""), 0);
  EXPECT_EQ(StoreEntries(*c), 0);
  ExpectCleanStop(*c);
}

TEST(FailureTest, PrefillKilledMidRequestFailsCleanlyUnderFailPolicy) {
  ClusterOptions o;
  o.proxy = false;
  o.both = false;
  o.decode_args = {"--kv-timeout", "1s", "--on-kv-miss", "fail"};
  auto c = StartCluster(o);
  ASSERT_NE(c, nullptr);
  const std::string body = TokenPromptBody(Tokens(kLongPrompt, 2), 6);
  auto prefill =
      std::async(std::launch::async, [&] { return Complete(c->prefill()->url(), body, false); });
  auto decode =
      std::async(std::launch::async, [&] { return Complete(c->decode()->url(), body, false); });
  ASSERT_TRUE(WaitForFirstBlock(*c));
  c->prefill()->StopWith(SIGKILL);
  (void)prefill.get();
  Completion got = decode.get();
  EXPECT_EQ(got.status, 504) << got.body;
  EXPECT_NE(got.error.find("--on-kv-miss fail"), std::string::npos) << got.error;
  EXPECT_TRUE(got.tokens.empty());
  const std::string d = c->decode()->url();
  EXPECT_EQ(EngineMetric(d, "kvstore_engine_kv_misses_total", "reason=\"timeout\""), 1);
  EXPECT_EQ(EngineMetric(d, "kvstore_engine_requests_total", "result=\"error\""), 1);
  // The engine is still healthy and serves what needs no remote KV.
  Completion small = Complete(d, TokenPromptBody(Tokens(9, 3), 4), false);
  EXPECT_EQ(small.status, 200) << small.error;
  EXPECT_EQ(small.tokens.size(), 4u);
  ExpectCleanStop(*c);
}

TEST(FailureTest, ProxyWithADeadPrefillEngineLetsDecodeRecomputeAtOnce) {
  ClusterOptions o;
  o.decode_args = {"--kv-timeout", "30s"};  // must not be waited for
  auto c = StartCluster(o);
  ASSERT_NE(c, nullptr);
  c->prefill()->StopWith(SIGKILL);
  const std::string body = TokenPromptBody(Tokens(100, 4), 7);
  const Completion want = Complete(c->both()->url(), body, false);
  auto start = std::chrono::steady_clock::now();
  Completion got = Complete(c->proxy()->url(), body, true);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  ASSERT_EQ(got.status, 200) << got.error;
  EXPECT_EQ(got.tokens, want.tokens);
  EXPECT_EQ(EngineMetric(c->decode()->url(), "kvstore_engine_kv_misses_total",
                         "reason=\"prefill_failed\""),
            1);
  EXPECT_EQ(EngineMetric(c->proxy()->url(), "kvstore_engine_upstream_errors_total",
                         "upstream=\"prefill\""),
            1);
  ExpectCleanStop(*c);
}

TEST(FailureTest, StoreTtlClearsBlocksNobodyTakes) {
  ClusterOptions o;
  o.kvstored_args = {"--ttl", "1s"};
  o.both = o.decode = o.proxy = false;
  auto c = StartCluster(o);
  ASSERT_NE(c, nullptr);
  for (int i = 0; i < 3; ++i) {
    Completion r = Complete(c->prefill()->url(), TokenPromptBody(Tokens(50 + i, 10 + i), 1), false);
    ASSERT_EQ(r.status, 200) << r.error;
  }
  EXPECT_EQ(StoreEntries(*c), 9) << "3 prompts x 3 full blocks, inserted and never taken";
  auto deadline = std::chrono::steady_clock::now() + 15s;
  while (StoreEntries(*c) != 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(100ms);
  EXPECT_EQ(StoreEntries(*c), 0) << "the store's TTL did not clear unclaimed blocks";
  ExpectCleanStop(*c);
}

}  // namespace
}  // namespace kvstore::testing
