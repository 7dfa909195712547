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
  for (const char* o :
       {"insert", "insert_many", "select", "drop_select", "match_prefix", "retain", "remove"}) {
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
  // The proxy answers the prompt as the colocated engine does, and its decode
  // took every full block from the store (no miss, nothing recomputed).
  void ExpectColocatedAnswerFromTheStore(EngineProcess& both, EngineProcess& proxy,
                                         const std::vector<int32_t>& prompt) {
    const std::string body = TokenPromptBody(prompt, 8);
    const size_t n = prompt.size();
    Completion want = Complete(both.url(), body, false);
    ASSERT_EQ(want.status, 200) << want.error;
    Completion got = Complete(proxy.url(), body, false);
    ASSERT_EQ(got.status, 200) << got.error;
    EXPECT_EQ(got.tokens, want.tokens) << "prompt of " << n << " tokens";
    auto kv = nlohmann::json::parse(got.body)["kvstore"];
    EXPECT_EQ(kv["miss"], "") << "prompt of " << n << " tokens: " << got.body;
    EXPECT_EQ(kv["loaded_blocks"], n / 16) << "prompt of " << n << " tokens: " << got.body;
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
  int blocks = 0, even_blocks = 0;
  int request = 0;
  for (int n : {17, 33, 48, 80, 129, 64}) {
    ExpectColocatedAnswerFromTheStore(*both, *proxy, Tokens(n, n));
    if (HasFatalFailure()) return;
    blocks += n / 16;
    if (request % 2 == 0) even_blocks += n / 16;
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
  // The decodes' own per-node view (their /metrics) says the same.
  auto at = [](TestDaemon& n, const char* op) {
    return "node=\"" + n.address() + "\",op=\"" + op + "\"";
  };
  const char* requests = "kvstore_engine_store_requests_total";
  EXPECT_EQ(EngineMetric(decode0->url(), requests, at(a, "drop_select")), 3);
  EXPECT_EQ(EngineMetric(decode1->url(), requests, at(b, "drop_select")), 3);
  EXPECT_GT(EngineMetric(decode0->url(), "kvstore_engine_store_bytes_total", at(a, "drop_select")),
            0);
  EXPECT_EQ(EngineMetric(decode0->url(), requests, at(b, "drop_select")), -1);  // its own node
  for (EngineProcess* e : {decode0.get(), decode1.get(), prefill0.get(), prefill1.get()}) {
    for (const char* op :
         {"insert", "insert_many", "select", "drop_select", "match_prefix", "retain"}) {
      EXPECT_EQ(EngineMetric(e->url(), requests, at(third, op)), -1) << op;
    }
  }
  // prefill0 answered the even requests and inserted every block of them on
  // its node, in single inserts or insert_many batches (blocks queued together).
  auto sent = [&](EngineProcess& e, TestDaemon& n) {
    double total = 0;
    for (const char* op : {"insert", "insert_many"}) {
      total += std::max(0.0, EngineMetric(e.url(), "kvstore_engine_store_bytes_total", at(n, op)));
    }
    return total;
  };
  const double pushed0 = EngineMetric(prefill0->url(), "kvstore_engine_kv_bytes_pushed_total");
  const double pushed1 = EngineMetric(prefill1->url(), "kvstore_engine_kv_bytes_pushed_total");
  EXPECT_GT(pushed0, 0);
  EXPECT_EQ(sent(*prefill0, a), pushed0);
  EXPECT_EQ(sent(*prefill1, b), pushed1);
  EXPECT_EQ(pushed0 * (blocks - even_blocks), pushed1 * even_blocks);  // the same block size
  EXPECT_LE(EngineMetric(prefill0->url(), requests, at(a, "insert")), even_blocks);
  // drop_select consumed what the prefills wrote.
  EXPECT_TRUE(Eventually([&] {
    return a.Metric("kvstore_entries", {{"tier", "host"}}).value_or(-1) == 0 &&
           b.Metric("kvstore_entries", {{"tier", "host"}}).value_or(-1) == 0;
  }));
}

// --overlap sends the decode before the prefill answers, so the proxy learns
// each prefill engine's store node from its /health up front: even the first
// request of each prefill carries the right node and nothing is recomputed.
TEST_F(ClusterEngineTest, OverlapProxyCarriesThePrefillsNodeFromTheFirstRequest) {
  TestDaemon& a = *nodes_[0];
  TestDaemon& b = *nodes_[1];
  auto both = Engine("both", {"--role", "both"});
  auto prefill0 = Engine("prefill0", {"--role", "prefill", "--store", LocalStore(a)});
  auto prefill1 = Engine("prefill1", {"--role", "prefill", "--store", LocalStore(b)});
  auto decode0 =
      Engine("decode0", {"--role", "decode", "--store", LocalStore(b), "--kv-timeout", "30s"});
  auto decode1 =
      Engine("decode1", {"--role", "decode", "--store", LocalStore(a), "--kv-timeout", "30s"});
  ASSERT_TRUE(both && prefill0 && prefill1 && decode0 && decode1);
  auto proxy = Engine("proxy", {"--role", "proxy", "--overlap", "--prefill",
                                prefill0->url() + "," + prefill1->url(), "--decode",
                                decode0->url() + "," + decode1->url()});
  ASSERT_TRUE(proxy);

  for (int n : {33, 48, 80, 64}) {
    ExpectColocatedAnswerFromTheStore(*both, *proxy, Tokens(n, n + 1));
    if (HasFatalFailure()) return;
  }
  for (EngineProcess* d : {decode0.get(), decode1.get()}) {
    EXPECT_LE(EngineMetric(d->url(), "kvstore_engine_kv_misses_total"), 0);
    EXPECT_LE(EngineMetric(d->url(), "kvstore_engine_kv_blocks_total", "recomputed"), 0);
  }
}

TEST_F(ClusterEngineTest, PrefillAnswersItsNodeAndMetricsShowMembershipChanges) {
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
  ASSERT_OK(single);
  const auto keys = Keys("single", 1);
  EXPECT_EQ((*single)->MatchPrefix(keys, {nodes_[1]->address()}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_OK((*single)->MatchPrefix(keys, {a.address()}));

  // Membership changes as the engine's client saw them, in its /metrics.
  const std::string url = prefill->url();
  ASSERT_TRUE(Eventually([&] { return EngineMetric(url, "kvstore_engine_store_members") == 3; }));
  EXPECT_EQ(EngineMetric(url, "kvstore_engine_store_etcd_reachable"), 1);
  const double joins = EngineMetric(url, "kvstore_engine_store_membership_changes_total", "join");
  EXPECT_GE(joins, 0);
  auto fourth = StartNode();
  ASSERT_NE(fourth, nullptr);
  EXPECT_TRUE(Eventually([&] {
    return EngineMetric(url, "kvstore_engine_store_membership_changes_total", "join") ==
               joins + 1 &&
           EngineMetric(url, "kvstore_engine_store_members") == 4;
  }));
  ASSERT_EQ(fourth->StopWith(SIGTERM), 0);  // revokes its lease
  EXPECT_TRUE(Eventually([&] {
    return EngineMetric(url, "kvstore_engine_store_membership_changes_total", "leave") == 1 &&
           EngineMetric(url, "kvstore_engine_store_members") == 3;
  }));
  etcd_->Stop();  // etcd gone: the engine says so and keeps the membership
  EXPECT_TRUE(
      Eventually([&] { return EngineMetric(url, "kvstore_engine_store_etcd_reachable") == 0; }));
  EXPECT_EQ(EngineMetric(url, "kvstore_engine_store_members"), 3);
}

}  // namespace
}  // namespace kvstore::testing
