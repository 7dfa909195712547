// InsertMany through a cluster client: one insert_many request per node with
// the keys placement puts there, results in the caller's order, and a dead
// node failing only its own keys.
#include <csignal>
#include <map>

#include "cluster_fixture.h"

namespace kvstore::testing {
namespace {

using namespace std::chrono_literals;

double Requests(const TestDaemon& d, const std::string& op) {
  return d.Metric("kvstore_requests_total", {{"op", op}, {"result", "ok"}}).value_or(0);
}

std::vector<InsertItem> ItemsOf(const std::vector<Key>& keys,
                                const std::vector<std::vector<std::byte>>& values) {
  std::vector<InsertItem> items;
  for (size_t i = 0; i < keys.size(); ++i) items.push_back({keys[i], values[i], std::nullopt});
  return items;
}

class ClusterInsertMany : public ClusterTest {
 protected:
  std::unique_ptr<Client> Direct(const std::string& address) {
    ClientOptions o;
    o.address = address;
    auto c = Client::Connect(o);
    EXPECT_OK(c);
    return c.ok() ? std::move(c).value() : nullptr;
  }
  // Whether `node` holds `key` (a direct connection, no placement).
  bool Holds(const std::string& node, const Key& key) {
    auto c = Direct(node);
    if (!c) return false;
    auto n = c->MatchPrefix(std::span<const Key>(&key, 1));
    EXPECT_OK(n);
    return n.ok() && *n == 1;
  }
};

TEST_F(ClusterInsertMany, OneRequestPerNodeEachKeyAtItsHomeResultsInCallerOrder) {
  auto c = NewClient();
  ASSERT_TRUE(c);
  const auto keys = Keys("many", 60);
  std::vector<std::vector<std::byte>> values;
  for (size_t i = 0; i < keys.size(); ++i) values.push_back(Value(keys[i], 1000 + 7 * i));
  // A few keys already stored (on their homes): their results say so, in place.
  const std::vector<size_t> present = {3, 17, 40};
  for (size_t i : present) ASSERT_OK(c->Insert(keys[i], values[i]));
  std::map<std::string, size_t> per_node;
  for (const auto& k : keys) ++per_node[c->Home(k)->address];
  ASSERT_EQ(per_node.size(), 3u) << "60 keys should reach every one of 3 nodes";
  std::map<std::string, std::pair<double, double>> before;  // insert_many, insert
  for (auto& n : nodes_) {
    before[n->address()] = {Requests(*n, "insert_many"), Requests(*n, "insert")};
  }

  auto res = c->InsertMany(ItemsOf(keys, values), {.layout = "test/many"});
  ASSERT_OK(res);
  ASSERT_EQ(res->size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    ASSERT_OK((*res)[i]) << "item " << i;
    const bool was_present = std::find(present.begin(), present.end(), i) != present.end();
    EXPECT_EQ(*(*res)[i], !was_present) << "item " << i;
  }
  for (auto& n : nodes_) {
    SCOPED_TRACE(n->address());
    EXPECT_EQ(Requests(*n, "insert_many") - before[n->address()].first, 1.0);
    EXPECT_EQ(Requests(*n, "insert") - before[n->address()].second, 0.0);
  }
  auto stats = c->Stats();
  for (const auto& node : stats.nodes) {
    for (const auto& op : node.ops) {
      if (op.op == cluster::NodeOp::kInsertMany) EXPECT_EQ(op.requests, 1u) << node.address;
    }
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string home = c->Home(keys[i])->address;
    for (auto& n : nodes_) {
      EXPECT_EQ(Holds(n->address(), keys[i]), n->address() == home)
          << "key " << i << " on " << n->address() << " (home " << home << ")";
    }
  }
  auto got = c->Select(keys);
  ASSERT_OK(got);
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ((*got)[i].value, values[i]) << i;

  // Through a plain Client with the cluster's address: the same path.
  ClientOptions o;
  o.address = etcd_->Url(kName);
  auto plain = Client::Connect(o);
  ASSERT_OK(plain);
  const auto more = Keys("many-plain", 12);
  std::vector<std::vector<std::byte>> more_values;
  for (const auto& k : more) more_values.push_back(Value(k, 512));
  auto res2 = (*plain)->InsertMany(ItemsOf(more, more_values));
  ASSERT_OK(res2);
  for (size_t i = 0; i < more.size(); ++i) {
    ASSERT_OK((*res2)[i]);
    EXPECT_TRUE(*(*res2)[i]);
    EXPECT_TRUE(Holds(c->Home(more[i])->address, more[i])) << i;
  }
}

TEST_F(ClusterInsertMany, AKilledNodeFailsOnlyItsKeysNamingIt) {
  // Membership read once and kept (no watch, no polling in the test's time):
  // the victim stays a member, as it does until its lease expires.
  ASSERT_TRUE(NewClient());  // returns once all three are in etcd
  cluster::ClusterClientOptions o;
  o.url = etcd_->Url(kName);
  o.watch = false;
  o.poll_interval = std::chrono::hours(1);
  o.node.client_name = "cluster insert_many test";
  auto connected = cluster::ClusterClient::Connect(o);
  ASSERT_OK(connected);
  auto& c = *connected;
  ASSERT_EQ(c->membership()->members().size(), 3u);
  const std::string victim = nodes_[1]->address();
  ASSERT_EQ(nodes_[1]->StopWith(SIGKILL), 128 + SIGKILL);
  const auto keys = Keys("many-kill", 60);
  std::vector<std::vector<std::byte>> values;
  for (const auto& k : keys) values.push_back(Value(k, 2048));
  std::map<std::string, double> before;
  for (auto& n : nodes_) {
    if (n->address() != victim) before[n->address()] = Requests(*n, "insert_many");
  }
  auto res = c->InsertMany(ItemsOf(keys, values));
  ASSERT_OK(res);
  ASSERT_EQ(res->size(), keys.size());
  size_t lost = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string home = c->Home(keys[i])->address;
    if (home == victim) {
      ++lost;
      ASSERT_FALSE((*res)[i].ok()) << "item " << i;
      EXPECT_EQ((*res)[i].status().code(), StatusCode::kUnavailable);
      EXPECT_NE((*res)[i].status().message().find(victim), std::string::npos)
          << (*res)[i].status().ToString();
    } else {
      ASSERT_OK((*res)[i]) << "item " << i;
      EXPECT_TRUE(*(*res)[i]);
      EXPECT_TRUE(Holds(home, keys[i])) << "item " << i;
    }
  }
  EXPECT_GT(lost, 0u);
  EXPECT_LT(lost, keys.size());
  for (const auto& [address, count] : before) {  // the survivors: one request each
    EXPECT_EQ(Requests(*NodeAt(address), "insert_many") - count, 1.0) << address;
    EXPECT_EQ(Requests(*NodeAt(address), "insert"), 0.0) << address;
  }
}

}  // namespace
}  // namespace kvstore::testing
