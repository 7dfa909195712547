// A real cluster (etcd + kvstored nodes on loopback) through ClusterClient:
// placement agreement and movement, the LookupBuffer contract across nodes,
// node loss, etcd loss, and the local placement.
#include <gtest/gtest.h>

#include "status_matchers.h"

#include <atomic>
#include <csignal>
#include <fstream>
#include <map>
#include <set>

#include <sys/wait.h>
#include <nlohmann/json.hpp>

#include "cluster_fixture.h"

namespace kvstore::testing {
namespace {

using cluster::ClusterClient;
using cluster::PlacementKind;
using namespace std::chrono_literals;

TEST_F(ClusterTest, EveryClientAgreesAndKeysLiveAtTheirHome) {
  auto a = NewClient();
  auto b = NewClient();
  ASSERT_TRUE(a && b);
  const auto keys = Keys("agree", 300);
  std::set<std::string> homes;
  for (const auto& k : keys) {
    auto ha = a->Home(k), hb = b->Home(k);
    ASSERT_OK(ha);
    ASSERT_OK(hb);
    EXPECT_EQ(ha->id, hb->id);
    homes.insert(ha->address);
    auto v = Value(k);
    ASSERT_OK(a->Insert(k, v));
  }
  EXPECT_EQ(homes.size(), 3u) << "300 keys should reach all three nodes";
  // b reads what a wrote, in key order, byte-exact.
  auto got = b->Select(keys);
  ASSERT_OK(got);
  for (size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ((*got)[i].key, keys[i]);
    EXPECT_EQ((*got)[i].value, Value(keys[i]));
  }
  // Each key is on its home node and on no other.
  for (const auto& k : std::span(keys).first(30)) {
    auto home = a->Home(k);
    for (auto& n : nodes_) {
      auto shown = a->Show(k, n->address());
      EXPECT_EQ(shown.ok(), n->address() == home->address) << n->address();
    }
  }
  auto m = b->MatchPrefix(keys);
  ASSERT_OK(m);
  EXPECT_EQ(*m, keys.size());
}

TEST_F(ClusterTest, TenThousandKeysSpreadWithinTenPercentAndAFourthNodeTakesAQuarter) {
  auto c = NewClient();
  ASSERT_TRUE(c);
  const auto keys = Keys("spread", 10000);
  std::map<std::string, size_t> count;
  std::vector<std::string> before;
  for (const auto& k : keys) {
    auto h = c->Home(k);
    ASSERT_OK(h);
    ++count[h->address];
    before.push_back(h->address);
  }
  ASSERT_EQ(count.size(), 3u);
  for (const auto& [address, n] : count) {
    EXPECT_GE(n, 3000u) << address;
    EXPECT_LE(n, 3667u) << address;
  }
  auto fourth = StartNode();
  ASSERT_NE(fourth, nullptr);
  ASSERT_OK(c->WaitForMembers(4, 20s));
  size_t moved = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    auto h = c->Home(keys[i]);
    if (h->address != before[i]) {
      ++moved;
      EXPECT_EQ(h->address, fourth->address()) << "a key moved between two old nodes";
    }
  }
  EXPECT_GE(moved, 2000u);  // about a quarter of 10000
  EXPECT_LE(moved, 3000u);
}

TEST_F(ClusterTest, DropSelectBlockedBeforeTheInsertReceivesTheBytes) {
  auto producer = NewClient();
  auto consumer = NewClient();
  ASSERT_TRUE(producer && consumer);
  const auto keys = Keys("blocked", 12);  // spread over the nodes
  Result<std::vector<Entry>> got = Status::Internal("not run");
  std::thread waiter([&] { got = consumer->DropSelect(keys, 60s); });
  // The waiter is parked on every node before anything is inserted.
  ASSERT_TRUE(Eventually([&] {
    double w = 0;
    for (auto& n : nodes_) w += n->Metric("kvstore_waiters").value_or(0);
    return w >= 1;
  }));
  for (const auto& k : keys) ASSERT_OK(producer->Insert(k, Value(k)));
  waiter.join();
  ASSERT_OK(got);
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ((*got)[i].value, Value(keys[i]));
  // Taken: gone from the cluster.
  auto m = producer->MatchPrefix(keys);
  ASSERT_OK(m);
  EXPECT_EQ(*m, 0u);
}

TEST_F(ClusterTest, ExactlyOneOfSeveralWaitersWinsAndTheOthersTimeOut) {
  auto producer = NewClient();
  ASSERT_TRUE(producer);
  const Key k = NamespaceSeed("contended");
  constexpr int kWaiters = 4;
  std::vector<std::unique_ptr<ClusterClient>> clients;
  for (int i = 0; i < kWaiters; ++i) clients.push_back(NewClient());
  std::vector<Result<std::vector<Entry>>> results(kWaiters, Status::Internal("not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kWaiters; ++i) {
    threads.emplace_back([&, i] { results[i] = clients[i]->DropSelect({&k, 1}, 3s); });
  }
  auto home = producer->Home(k);
  ASSERT_OK(home);
  TestDaemon* node = NodeAt(home->address);
  ASSERT_NE(node, nullptr);
  ASSERT_TRUE(Eventually([&] { return node->Metric("kvstore_waiters").value_or(0) >= kWaiters; }));
  ASSERT_OK(producer->Insert(k, Value(k)));
  for (auto& t : threads) t.join();
  int won = 0, timed_out = 0;
  for (auto& r : results) {
    if (r.ok()) {
      ++won;
      EXPECT_EQ((*r)[0].value, Value(k));
    } else {
      EXPECT_EQ(r.status().code(), StatusCode::kTimeout) << r.status().ToString();
      timed_out += r.status().code() == StatusCode::kTimeout;
    }
  }
  EXPECT_EQ(won, 1);
  EXPECT_EQ(timed_out, kWaiters - 1);
}

TEST_F(ClusterTest, DropSelectOfAnAbsentKeyTimesOut) {
  auto c = NewClient();
  ASSERT_TRUE(c);
  const auto keys = Keys("never", 6);
  auto r = c->DropSelect(keys, 700ms);  // longer than a re-issue slice
  EXPECT_EQ(r.status().code(), StatusCode::kTimeout) << r.status().ToString();
  for (auto& n : nodes_) {
    EXPECT_TRUE(Eventually([&] { return n->Metric("kvstore_waiters").value_or(0) == 0; }));
  }
}

TEST_F(ClusterTest, SigkilledNodeIsAMissAndTheRestStayIntact) {
  auto c = NewClient();
  ASSERT_TRUE(c);
  const auto keys = Keys("kill", 300);
  for (const auto& k : keys) ASSERT_OK(c->Insert(k, Value(k)));
  const std::string victim = nodes_[1]->address();
  std::vector<Key> lost, kept;
  for (const auto& k : keys) (c->Home(k)->address == victim ? lost : kept).push_back(k);
  ASSERT_FALSE(lost.empty());
  ASSERT_EQ(nodes_[1]->StopWith(SIGKILL), 128 + SIGKILL);

  // Within the lease time (the victim is still a member): misses, not hangs.
  EXPECT_EQ(c->Select(lost).status().code(), StatusCode::kNotFound);
  auto m = c->MatchPrefix(lost);
  ASSERT_OK(m);
  EXPECT_EQ(*m, 0u);
  EXPECT_EQ(c->DropSelect({&lost[0], 1}, 60s).status().code(), StatusCode::kUnavailable);
  auto rest = c->Select(kept);
  ASSERT_OK(rest);
  for (size_t i = 0; i < kept.size(); ++i) EXPECT_EQ((*rest)[i].value, Value(kept[i]));

  // The lease expires: the victim leaves and its keys get new homes that work.
  ASSERT_TRUE(Eventually([&] { return c->membership()->members().size() == 2; }));
  for (const auto& k : lost) {
    ASSERT_NE(c->Home(k)->address, victim);
    auto ins = c->Insert(k, Value(k));
    ASSERT_OK(ins);
  }
  auto again = c->Select(lost);
  ASSERT_OK(again);
  EXPECT_EQ((*again)[0].value, Value(lost[0]));
}

TEST_F(ClusterTest, DropSelectWaitingOnANodeThatLeavesFailsUnavailable) {
  auto c = NewClient();
  ASSERT_TRUE(c);
  const std::string leaver = nodes_[2]->address();
  Key k;
  for (const auto& cand : Keys("leave", 100)) {
    if (c->Home(cand)->address == leaver) {
      k = cand;
      break;
    }
  }
  Result<std::vector<Entry>> got = Status::Internal("not run");
  std::thread waiter([&] { got = c->DropSelect({&k, 1}, 60s); });
  ASSERT_TRUE(Eventually([&] { return nodes_[2]->Metric("kvstore_waiters").value_or(0) >= 1; }));
  nodes_[2]->StopWith(SIGTERM);  // clean shutdown: leaves the cluster at once
  waiter.join();
  EXPECT_EQ(got.status().code(), StatusCode::kUnavailable) << got.status().ToString();
}

TEST_F(ClusterTest, DropSelectFollowsAKeyWhoseHomeMovesToAJoiningNode) {
  auto consumer = NewClient();
  ASSERT_TRUE(consumer);
  // The joiner's id is fixed in advance (kept in its data dir), so we know which keys it takes.
  TempDir dir("kvstore-joiner");
  const std::string joiner_id = "00joiner0000test";
  { std::ofstream(dir.path() + "/node-id") << joiner_id << "\n"; }
  auto members = consumer->membership()->members();
  cluster::Member joiner = members[0];
  joiner.id = joiner_id;
  members.push_back(joiner);
  cluster::Placement future(members);
  Key k;
  bool found = false;
  for (const auto& cand : Keys("join", 200)) {
    if (future.Home(cand).id == joiner_id) {
      k = cand;
      found = true;
      break;
    }
  }
  ASSERT_TRUE(found);
  Result<std::vector<Entry>> got = Status::Internal("not run");
  std::thread waiter([&] { got = consumer->DropSelect({&k, 1}, 60s); });
  auto fourth = StartNode(dir.path());
  ASSERT_NE(fourth, nullptr);
  auto producer = NewClient(PlacementKind::kHash, "", 4);
  ASSERT_TRUE(producer);
  ASSERT_EQ(producer->Home(k)->address, fourth->address());
  ASSERT_OK(producer->Insert(k, Value(k)));
  waiter.join();
  ASSERT_OK(got);
  EXPECT_EQ((*got)[0].value, Value(k));
}

TEST_F(ClusterTest, EtcdDownKeepsTheLastMembershipAndConvergesWhenBack) {
  auto c = NewClient();
  ASSERT_TRUE(c);
  auto before = c->membership()->members();
  etcd_->Stop();
  ASSERT_TRUE(Eventually([&] { return !c->Stats().etcd_reachable; }));
  // Reads and writes go on, on the last membership.
  const auto keys = Keys("etcd-down", 100);
  for (const auto& k : keys) ASSERT_OK(c->Insert(k, Value(k)));
  auto got = c->Select(keys);
  ASSERT_OK(got);
  EXPECT_EQ((*got)[99].value, Value(keys[99]));
  EXPECT_EQ(c->membership()->members(), before);
  for (auto& n : nodes_) {
    EXPECT_TRUE(Eventually([&] {
      return n->Metric("kvstore_cluster_etcd_reachable", {{"cluster", kName}}) == 0.0;
    }));
  }
  // Let the 2 s leases lapse while etcd is away.
  std::this_thread::sleep_for(3s);
  std::string error;
  ASSERT_TRUE(etcd_->Restart(&error)) << error;
  // Converges: every node registered again, the client sees the same three.
  for (auto& n : nodes_) {
    EXPECT_TRUE(Eventually([&] {
      return n->Metric("kvstore_cluster_registered", {{"cluster", kName}}) == 1.0 &&
             n->Metric("kvstore_cluster_etcd_reachable", {{"cluster", kName}}) == 1.0;
    }));
  }
  ASSERT_TRUE(Eventually(
      [&] { return c->Stats().etcd_reachable && c->membership()->members().size() == 3; }));
  EXPECT_EQ(c->membership()->members().size(), before.size());
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_EQ(c->membership()->members()[i].id, before[i].id);
  }
  auto still = c->Select(keys);
  ASSERT_OK(still);
  // A node joining afterwards is seen.
  auto fourth = StartNode();
  ASSERT_NE(fourth, nullptr);
  EXPECT_OK(c->WaitForMembers(4, 20s));
}

TEST_F(ClusterTest, LocalPlacementPullsFromTheProducersNodeOnly) {
  const std::string home = nodes_[0]->address();
  auto producer = NewClient(PlacementKind::kLocal, home);
  auto consumer = NewClient(PlacementKind::kLocal, nodes_[2]->address());
  ASSERT_TRUE(producer && consumer);
  auto requests = [&](TestDaemon* n) {
    // Every data request the node served (its per-op counters).
    double total = 0;
    for (const char* op : {"hello", "insert", "select", "drop_select", "match_prefix"}) {
      total += n->Metric("kvstore_requests_total", {{"op", op}, {"result", "ok"}}).value_or(0);
      total += n->Metric("kvstore_requests_total", {{"op", op}, {"result", "timeout"}}).value_or(0);
    }
    return total;
  };
  const double b0 = requests(nodes_[1].get()), c0 = requests(nodes_[2].get());
  const auto keys = Keys("local", 40);
  for (const auto& k : keys) ASSERT_OK(producer->Insert(k, Value(k)));
  // The request tells the consumer where the producer wrote.
  auto m = consumer->MatchPrefix(keys, home);
  ASSERT_OK(m);
  EXPECT_EQ(*m, keys.size());
  auto got = consumer->DropSelect(keys, 10s, home);
  ASSERT_OK(got);
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ((*got)[i].value, Value(keys[i]));
  auto stats = producer->Node(home);
  ASSERT_OK(stats);
  auto s = (*stats)->Stats();
  ASSERT_OK(s);
  EXPECT_GE(s->inserts, keys.size());
  EXPECT_EQ(requests(nodes_[1].get()), b0);
  EXPECT_EQ(requests(nodes_[2].get()), c0);
}

TEST_F(ClusterTest, RestartedNodeWithSpillComesBackWithItsIdAndItsEntries) {
  TempDir dir("kvstore-spill-node");
  auto spilled = StartNode(dir.path(), {"--spill", "64MiB"});
  ASSERT_NE(spilled, nullptr);
  auto c = NewClient(PlacementKind::kHash, "", 4);
  ASSERT_TRUE(c);
  std::string id;
  std::getline(std::ifstream(dir.path() + "/node-id"), id);
  ASSERT_FALSE(id.empty());
  ASSERT_NE(c->membership()->FindById(id), nullptr);
  const std::string address = spilled->address();
  std::vector<Key> mine;
  for (const auto& k : Keys("spill", 400)) {
    if (c->Home(k)->address == address) mine.push_back(k);
  }
  ASSERT_FALSE(mine.empty());
  for (const auto& k : mine) ASSERT_OK(c->Insert(k, Value(k)));

  ASSERT_EQ(spilled->StopWith(SIGTERM), 0);  // flushes its memory tier to spill, revokes the lease
  ASSERT_TRUE(Eventually([&] { return c->membership()->FindById(id) == nullptr; }));
  auto gone = c->MatchPrefix(mine);  // homes moved to the other three
  ASSERT_OK(gone);
  EXPECT_EQ(*gone, 0u);

  auto again = StartNode(dir.path(), {"--spill", "64MiB"});
  ASSERT_NE(again, nullptr);
  ASSERT_TRUE(Eventually([&] { return c->membership()->FindById(id) != nullptr; }));
  // Same id, so the same homes, and the entries are back from spill (maybe on a new port).
  for (const auto& k : mine) EXPECT_EQ(c->Home(k)->id, id);
  auto got = c->Select(mine);
  ASSERT_OK(got);
  for (size_t i = 0; i < mine.size(); ++i) EXPECT_EQ((*got)[i].value, Value(mine[i]));
}

TEST_F(ClusterTest, PlainClientTakesAClusterAddress) {
  auto placed = NewClient();  // returns once all three are in etcd
  ASSERT_TRUE(placed);
  ClientOptions o;
  o.address = etcd_->Url(kName);
  auto c = Client::Connect(o);  // so its first read of the membership has all three
  ASSERT_OK(c);
  const auto keys = Keys("plain", 30);
  for (const auto& k : keys) ASSERT_OK((*c)->Insert(k, Value(k)));
  // Same homes as a ClusterClient computes.
  for (const auto& k : keys) EXPECT_OK(placed->Show(k, placed->Home(k)->address));
  auto m = (*c)->MatchPrefix(keys);
  ASSERT_OK(m);
  EXPECT_EQ(*m, keys.size());
  EXPECT_OK((*c)->Ping());
  auto stats = (*c)->Stats();
  ASSERT_OK(stats);
  EXPECT_EQ(stats->inserts, keys.size());
  std::vector<std::vector<std::byte>> bufs(keys.size(), std::vector<std::byte>(4096));
  std::vector<std::span<std::byte>> dst(bufs.begin(), bufs.end());
  auto got = (*c)->DropSelectInto(keys, dst, 5s);
  ASSERT_OK(got);
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(bufs[i], Value(keys[i]));
  o.address = etcd_->Url(kName) + "?placement=bogus";
  EXPECT_EQ(Client::Connect(o).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(ClusterTest, WatchSeesJoinsAndLeavesWithoutWaitingForAPoll) {
  cluster::ClusterClientOptions o;
  o.url = etcd_->Url(kName);
  o.poll_interval = std::chrono::hours(1);  // only the watch stream can notice in time
  auto c = ClusterClient::Connect(o);
  ASSERT_OK(c);
  ASSERT_TRUE(Eventually([&] { return (*c)->Stats().watching; }));
  ASSERT_OK((*c)->WaitForMembers(3, 20s));  // the nodes register as they start
  const auto before = (*c)->Stats();
  auto fourth = StartNode();
  ASSERT_NE(fourth, nullptr);
  EXPECT_TRUE(Eventually([&] { return (*c)->membership()->members().size() == 4; }));
  ASSERT_EQ(fourth->StopWith(SIGTERM), 0);  // revokes its lease
  EXPECT_TRUE(Eventually([&] { return (*c)->membership()->members().size() == 3; }));
  const auto s = (*c)->Stats();
  EXPECT_EQ(s.joins - before.joins, 1u);
  EXPECT_EQ(s.leaves - before.leaves, 1u);
}

TEST_F(ClusterTest, ListPagesThroughEveryNodeAndResumesEachWhereItStopped) {
  auto placed = NewClient();
  ASSERT_TRUE(placed);
  const auto keys = Keys("list", 250);
  std::map<std::string, int> per_node;
  for (const auto& k : keys) {
    ASSERT_OK(placed->Insert(k, Value(k, 64)));
    per_node[placed->Home(k)->address]++;
  }
  ASSERT_EQ(per_node.size(), 3u);  // every node holds some
  ClientOptions o;
  o.address = etcd_->Url(kName);
  auto c = Client::Connect(o);
  ASSERT_OK(c);

  std::multiset<std::string> seen;
  ListOptions lo;
  lo.limit = 40;
  int pages = 0;
  std::unique_ptr<TestDaemon> fourth;
  std::vector<Key> late;
  while (true) {
    auto page = (*c)->List(lo);
    ASSERT_OK(page);
    EXPECT_LE(page->entries.size(), 40u);
    for (const auto& e : page->entries) seen.insert(e.key.ToHex());
    ++pages;
    if (page->next_cursor.empty()) break;
    lo.cursor = page->next_cursor;
    if (pages == 2) {
      // A node joining mid-listing is listed from its start.
      fourth = StartNode();
      ASSERT_NE(fourth, nullptr);
      ASSERT_OK(placed->WaitForMembers(4, 20s));
      auto direct = placed->Node(fourth->address());
      ASSERT_OK(direct);
      late = Keys("late", 5);
      for (const auto& k : late) ASSERT_OK((*direct)->Insert(k, Value(k, 64)));
      ASSERT_TRUE(Eventually([&] { return (*c)->cluster()->membership()->members().size() == 4; }));
    }
    ASSERT_LT(pages, 100);
  }
  EXPECT_GE(pages, 7);  // 255 entries at most 40 a page
  EXPECT_EQ(seen.size(), keys.size() + late.size());
  for (const auto& k : keys) EXPECT_EQ(seen.count(k.ToHex()), 1u) << k.ToHex();
  for (const auto& k : late) EXPECT_EQ(seen.count(k.ToHex()), 1u) << k.ToHex();

  ListOptions bad;
  bad.cursor = {std::byte{1}, std::byte{2}};
  EXPECT_EQ((*c)->List(bad).status().code(), StatusCode::kInvalidArgument);
}

#ifdef KVSTORE_CLI_PATH
// Runs kvstore-cli with `args`; returns its exit code and stdout.
int Cli(const std::string& args, std::string* out) {
  FILE* p = ::popen((std::string(KVSTORE_CLI_PATH) + " " + args + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  out->clear();
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out->append(buf, n);
  int status = ::pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_F(ClusterTest, CliShowsMembersStatsAndWhereAKeyLives) {
  auto c = NewClient();
  ASSERT_TRUE(c);
  const Key k = NamespaceSeed("cli-key");
  const std::string url = etcd_->Url(kName);
  std::string out;
  ASSERT_EQ(Cli("--cluster " + url + " members", &out), 0) << out;
  for (auto& n : nodes_) EXPECT_NE(out.find(n->address()), std::string::npos) << out;
  EXPECT_EQ(Cli("--cluster " + url + " locate " + k.ToHex(), &out), 3) << out;  // not stored
  ASSERT_OK(c->Insert(k, Value(k)));
  ASSERT_EQ(Cli("--cluster " + url + " locate " + k.ToHex() + " --json", &out), 0) << out;
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["home"]["address"], c->Home(k)->address);
  EXPECT_EQ(j["held_by"], nlohmann::json::array({c->Home(k)->address}));
  ASSERT_EQ(Cli("--cluster " + url + " stats --json", &out), 0) << out;
  uint64_t inserts = 0;
  const auto stats = nlohmann::json::parse(out);
  for (const auto& n : stats["nodes"]) inserts += n["inserts"].get<uint64_t>();
  EXPECT_EQ(inserts, 1u) << out;
  ASSERT_EQ(Cli("--cluster " + url + " ls", &out), 0) << out;
  EXPECT_NE(out.find(k.ToHex()), std::string::npos) << out;
  for (const auto& other : Keys("cli-ls", 30)) ASSERT_OK(c->Insert(other, Value(other)));
  ASSERT_EQ(Cli("--cluster " + url + " ls --limit 0 --json", &out), 0) << out;
  const auto listed = nlohmann::json::parse(out);
  EXPECT_EQ(listed["entries"].size(), 31u) << out;
  EXPECT_EQ(listed["more"], false);
  std::set<std::string> nodes;
  for (const auto& e : listed["entries"]) nodes.insert(e["node"].get<std::string>());
  EXPECT_EQ(nodes.size(), 3u) << out;
  // --tier filters on every node: all 31 are in host memory, none spilled.
  ASSERT_EQ(Cli("--cluster " + url + " ls --limit 0 --json --tier host", &out), 0) << out;
  EXPECT_EQ(nlohmann::json::parse(out)["entries"].size(), 31u) << out;
  ASSERT_EQ(Cli("--cluster " + url + " ls --limit 0 --json --tier spill", &out), 0) << out;
  EXPECT_EQ(nlohmann::json::parse(out)["entries"].size(), 0u) << out;
  EXPECT_EQ(Cli("--cluster " + url + " ls --tier disk", &out), 2) << out;
  EXPECT_NE(out.find("--tier must be host, spill or device"), std::string::npos) << out;
  EXPECT_EQ(Cli("members", &out), 2) << out;  // needs --cluster
}
#endif

}  // namespace
}  // namespace kvstore::testing
