// Chunked prefill (--max-prefill-chunk) in the colocated engine: prompts are
// computed a chunk per step inside the running decodes' forward pass, and the
// answers stay token for token those of disaggregated serving (which computes
// each prompt whole), also when many requests interleave.
#include <gtest/gtest.h>

#include <future>

#include "cluster.h"
#include "kvstore/engine/http_client.h"

namespace kvstore::testing {
namespace {

std::vector<int32_t> Tokens(int n, int salt) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back((i * 29 + salt * 13 + 3) % 256);
  return t;
}

TEST(ChunkedPrefill, InterleavedChunksAndDecodesMatchDisaggregatedServing) {
  ClusterOptions o;
  o.both_args = {"--max-prefill-chunk", "24", "--max-batch", "4"};
  std::string error;
  auto cluster = Cluster::Start(o, &error);
  ASSERT_NE(cluster, nullptr) << error;
  struct Case {
    std::vector<int32_t> prompt;
    int max_tokens;
    float temperature;
    bool stream;
  };
  std::vector<Case> cases;
  int salt = 0;
  // Shorter than, equal to and longer than a chunk; several chunks; a shared prefix.
  for (int n : {3, 23, 24, 25, 48, 70, 130, 200})
    cases.push_back({Tokens(n, ++salt), 6 + n % 7, n % 3 == 0 ? 0.7f : 0.0f, n % 2 == 0});
  auto shared = Tokens(60, 77);
  for (int extra : {0, 5, 33}) {
    auto p = shared;
    auto tail = Tokens(extra, 300 + extra);
    p.insert(p.end(), tail.begin(), tail.end());
    cases.push_back({p, 9, 0, extra == 5});
  }
  // All at once on each setup, so prefill chunks and decodes share steps.
  auto run = [&](const std::string& url) {
    std::vector<std::future<Completion>> f;
    for (const Case& c : cases)
      f.push_back(std::async(std::launch::async, [&, c] {
        return Complete(url, TokenPromptBody(c.prompt, c.max_tokens, c.temperature, 5), c.stream);
      }));
    std::vector<Completion> out;
    for (auto& x : f) out.push_back(x.get());
    return out;
  };
  auto chunked = run(cluster->both()->url());
  auto disagg = run(cluster->proxy()->url());
  for (size_t i = 0; i < cases.size(); ++i) {
    ASSERT_EQ(chunked[i].status, 200) << chunked[i].error;
    ASSERT_EQ(disagg[i].status, 200) << disagg[i].error;
    EXPECT_EQ(chunked[i].tokens.size(), static_cast<size_t>(cases[i].max_tokens));
    EXPECT_EQ(chunked[i].tokens, disagg[i].tokens)
        << "prompt of " << cases[i].prompt.size() << " tokens";
  }
  EXPECT_TRUE(cluster->StopAll(&error)) << error;
}

TEST(ChunkedPrefill, RefusedOutsideTheColocatedRole) {
  std::string error;
  auto p = EngineProcess::Start(
      "prefill", {"--role", "prefill", "--max-prefill-chunk", "16", "--store", "127.0.0.1:1"},
      &error);
  EXPECT_EQ(p, nullptr);
  EXPECT_NE(error.find("--max-prefill-chunk"), std::string::npos) << error;
}

}  // namespace
}  // namespace kvstore::testing
