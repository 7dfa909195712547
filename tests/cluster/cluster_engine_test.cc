// Disaggregated serving over a store cluster with the local placement: two
// prefill and two decode engines, each on its own store node, and a proxy
// whose routing crosses nodes. The prefill answers where it wrote the KV
// (kv_transfer_params.remote_store_node), the proxy passes it on, and the
// decode pulls from that node in one hop: every answer equals the colocated
// engine's, nothing is recomputed and the third node sees no data traffic.
#include <signal.h>

#include <nlohmann/json.hpp>

#include "cluster.h"
#include "cluster_fixture.h"

namespace kvstore::testing {
namespace {

using cluster::PlacementKind;

std::vector<int32_t> Tokens(int n, int salt) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back((i * 37 + salt * 11 + 3) % 256);
  return t;
}

// Data requests a store node served (its own per-op counters).
double DataRequests(TestDaemon& n, const char* op = nullptr) {
  double total = 0;
  for (const char* o : {"insert", "select", "drop_select", "match_prefix", "retain", "remove"}) {
    if (op != nullptr && std::string(op) != o) continue;
    for (const char* r : {"ok", "not_found", "timeout"}) {
      total += n.Metric("kvstore_requests_total", {{"op", o}, {"result", r}}).value_or(0);
    }
  }
  return total;
}

class ClusterEngineTest : public ClusterTest {
 protected:
  std::unique_ptr<EngineProcess> Engine(const std::string& name,
                                        const std::vector<std::string>& args) {
    std::vector<std::string> a = {"--log-level", "warn"};
    a.insert(a.end(), args.begin(), args.end());
    std::string error;
    auto e = EngineProcess::Start(name, a, &error);
    EXPECT_NE(e, nullptr) << error;
    return e;
  }
  std::string LocalStore(TestDaemon& node) {
    return etcd_->Url(kName) + "?placement=local&node=" + node.address();
  }
};

TEST_F(ClusterEngineTest, DecodePullsFromThePrefillsNodeInOneHopAndAnswersEqualColocated) {
  TestDaemon& a = *nodes_[0];
  TestDaemon& b = *nodes_[1];
  TestDaemon& third = *nodes_[2];
  // The proxy pairs prefill i with decode i, and they sit on different nodes.
  auto both = Engine("both", {"--role", "both"});
  auto prefill0 = Engine("prefill0", {"--role", "prefill", "--store", LocalStore(a)});
  auto prefill1 = Engine("prefill1", {"--role", "prefill", "--store", LocalStore(b)});
  auto decode0 = Engine("decode0", {"--role", "decode", "--store", LocalStore(b), "--kv-timeout",
                                    "30s", "--on-kv-miss", "fail"});
  auto decode1 = Engine("decode1", {"--role", "decode", "--store", LocalStore(a), "--kv-timeout",
                                    "30s", "--on-kv-miss", "fail"});
  ASSERT_TRUE(both && prefill0 && prefill1 && decode0 && decode1);
  auto proxy =
      Engine("proxy", {"--role", "proxy", "--prefill", prefill0->url() + "," + prefill1->url(),
                       "--decode", decode0->url() + "," + decode1->url()});
  ASSERT_TRUE(proxy);

  const double third_before = DataRequests(third);
  const double a_drops = DataRequests(a, "drop_select");
  const double b_drops = DataRequests(b, "drop_select");
  int blocks = 0;
  int request = 0;
  for (int n : {17, 33, 48, 80, 129, 64}) {
    const std::string body = TokenPromptBody(Tokens(n, n), 8);
    Completion want = Complete(both->url(), body, false);
    ASSERT_EQ(want.status, 200) << want.error;
    Completion got = Complete(proxy->url(), body, false);
    ASSERT_EQ(got.status, 200) << got.error;
    EXPECT_EQ(got.tokens, want.tokens) << "prompt of " << n << " tokens";
    // The decode took every block from the store: nothing recomputed.
    auto kv = nlohmann::json::parse(got.body)["kvstore"];
    EXPECT_EQ(kv["miss"], "") << got.body;
    EXPECT_EQ(kv["loaded_blocks"], n / 16) << got.body;
    blocks += n / 16;
    ++request;
  }
  ASSERT_EQ(request, 6);
  EXPECT_GT(blocks, 0);
  for (EngineProcess* d : {decode0.get(), decode1.get()}) {
    EXPECT_LE(EngineMetric(d->url(), "kvstore_engine_kv_misses_total"), 0);
    EXPECT_LE(EngineMetric(d->url(), "kvstore_engine_kv_blocks_total", "recomputed"), 0);
  }
  // Each decode pulled from the other node (its prefill's), never through the third.
  EXPECT_EQ(DataRequests(a, "drop_select") - a_drops, 3);
  EXPECT_EQ(DataRequests(b, "drop_select") - b_drops, 3);
  EXPECT_EQ(DataRequests(third), third_before);
  // drop_select consumed what the prefills wrote.
  EXPECT_TRUE(Eventually([&] {
    return a.Metric("kvstore_entries", {{"tier", "host"}}).value_or(-1) == 0 &&
           b.Metric("kvstore_entries", {{"tier", "host"}}).value_or(-1) == 0;
  }));
}

TEST_F(ClusterEngineTest, PrefillAnswersItsNodeAndASingleNodeClientRefusesAnother) {
  TestDaemon& a = *nodes_[0];
  auto prefill = Engine("prefill", {"--role", "prefill", "--store", LocalStore(a)});
  ASSERT_TRUE(prefill);
  Completion got = Complete(prefill->url(), TokenPromptBody(Tokens(40, 1), 1), false);
  ASSERT_EQ(got.status, 200) << got.error;
  auto j = nlohmann::json::parse(got.body);
  EXPECT_EQ(j["kv_transfer_params"]["remote_store_node"], a.address()) << got.body;

  ClientOptions o;
  o.address = a.address();
  auto single = Client::Connect(o);
  ASSERT_TRUE(single.ok()) << single.status().ToString();
  const auto keys = Keys("single", 1);
  EXPECT_EQ((*single)->MatchPrefix(keys, {nodes_[1]->address()}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE((*single)->MatchPrefix(keys, {a.address()}).ok());
}

}  // namespace
}  // namespace kvstore::testing
