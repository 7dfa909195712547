// kvstore-cluster-bench: what placement costs and what more nodes give, on loopback.
//
// Starts one etcd and four kvstored (one alone in cluster "solo", three in "trio"),
// then runs interleaved rounds of:
//   overhead   the same node addressed directly (Client, HOST:PORT) and through
//              the cluster (Client, etcd://.../solo): 4 MiB insert + drop_select,
//              and match_prefix of 32 keys;
//   placement  rendezvous home of one key over 3 members (CPU only);
//   aggregate  4 threads of 4 MiB insert + drop_select through the cluster
//              client, over 1 node (solo) and over 3 nodes (trio).
// Prints median and min-max of the rounds and the ratios. 2 cores bound the
// aggregate figures: every node, the benchmark and etcd share them.
//
//   kvstore-cluster-bench [--rounds N] [--ops N]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "etcd_process.h"
#include "kvstore/client.h"
#include "kvstore/cluster/cluster_client.h"
#include "test_daemon.h"

namespace {

using kvstore::Client;
using kvstore::ClientOptions;
using kvstore::Key;
using Clock = std::chrono::steady_clock;

struct Series {
  std::vector<double> v;
  double median() const {
    auto s = v;
    std::sort(s.begin(), s.end());
    return s.empty() ? 0 : s[s.size() / 2];
  }
  double min() const { return v.empty() ? 0 : *std::min_element(v.begin(), v.end()); }
  double max() const { return v.empty() ? 0 : *std::max_element(v.begin(), v.end()); }
};

void Print(const char* what, const char* unit, const Series& s) {
  std::printf("  %-46s %10.3f %s  (min %.3f, max %.3f, %zu rounds)\n", what, s.median(), unit,
              s.min(), s.max(), s.v.size());
}

std::unique_ptr<Client> Connect(const std::string& address) {
  ClientOptions o;
  o.address = address;
  o.client_name = "cluster bench";
  o.max_connections = 8;
  auto c = Client::Connect(o);
  if (!c.ok()) {
    std::fprintf(stderr, "cluster-bench: connect %s: %s\n", address.c_str(),
                 c.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(c).value();
}

std::atomic<uint64_t> g_key_seq{0};
Key NextKey() { return kvstore::NamespaceSeed("bench-" + std::to_string(g_key_seq++)); }

// GB/s of `ops` 4 MiB insert + drop_select pairs (bytes counted once).
double InsertDrop(Client& c, int ops, const std::vector<std::byte>& value,
                  std::vector<std::byte>& sink) {
  auto t0 = Clock::now();
  for (int i = 0; i < ops; ++i) {
    Key k = NextKey();
    auto ins = c.Insert(k, value);
    std::span<std::byte> dst[] = {sink};
    auto got = ins.ok() ? c.DropSelectInto({&k, 1}, dst, std::chrono::seconds(10))
                        : decltype(c.DropSelectInto({&k, 1}, dst, {}))(ins.status());
    if (!got.ok()) {
      std::fprintf(stderr, "cluster-bench: insert/drop_select failed: %s\n",
                   got.status().ToString().c_str());
      std::exit(1);
    }
  }
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  return static_cast<double>(value.size()) * ops / s / 1e9;
}

// Microseconds per match_prefix of `keys`.
double Match(Client& c, const std::vector<Key>& keys, int calls) {
  auto t0 = Clock::now();
  for (int i = 0; i < calls; ++i) {
    auto m = c.MatchPrefix(keys);
    if (!m.ok() || *m != keys.size()) {
      std::fprintf(stderr, "cluster-bench: match_prefix failed\n");
      std::exit(1);
    }
  }
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / calls;
}

// Aggregate GB/s of `threads` threads each doing `ops` insert + drop_select.
double Aggregate(Client& c, int threads, int ops, const std::vector<std::byte>& value) {
  std::vector<std::thread> ts;
  auto t0 = Clock::now();
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&] {
      std::vector<std::byte> sink(value.size());
      (void)InsertDrop(c, ops, value, sink);
    });
  }
  for (auto& t : ts) t.join();
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  return static_cast<double>(value.size()) * ops * threads / s / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 5, ops = 48;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--rounds") == 0) rounds = std::max(3, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--ops") == 0) ops = std::max(4, std::atoi(argv[i + 1]));
  }
  using namespace kvstore::testing;
  std::string error;
  auto etcd = EtcdProcess::Start(&error);
  if (!etcd) {
    std::fprintf(stderr, "cluster-bench: %s\n", error.c_str());
    return 1;
  }
  auto node = [&](const std::string& name) {
    DaemonOptions o;
    o.args = {"--cluster", etcd->Url(name), "--memory", "256MiB", "--log-level", "warn"};
    auto d = TestDaemon::Start(o, &error);
    if (!d) {
      std::fprintf(stderr, "cluster-bench: kvstored: %s\n", error.c_str());
      std::exit(1);
    }
    return d;
  };
  auto solo = node("solo");
  std::vector<std::unique_ptr<TestDaemon>> trio;
  for (int i = 0; i < 3; ++i) trio.push_back(node("trio"));

  auto direct = Connect(solo->address());
  auto via_cluster = Connect(etcd->Url("solo"));
  auto trio_client = Connect(etcd->Url("trio"));
  {
    kvstore::cluster::ClusterClientOptions o;
    o.url = etcd->Url("trio");
    auto probe = kvstore::cluster::ClusterClient::Connect(o);
    if (!probe.ok() || !(*probe)->WaitForMembers(3, std::chrono::seconds(20)).ok()) {
      std::fprintf(stderr, "cluster-bench: trio did not come up\n");
      return 1;
    }
  }

  const std::vector<std::byte> value(4 << 20, std::byte{0x5a});
  std::vector<std::byte> sink(value.size());
  std::vector<Key> prefix;
  for (int i = 0; i < 32; ++i) prefix.push_back(NextKey());
  // match_prefix keys live on the solo node (both clients reach the same one).
  for (const auto& k : prefix) (void)direct->Insert(k, std::span(value).first(4096));

  // Placement alone: the home of one key over the trio's three members.
  kvstore::cluster::ClusterClientOptions po;
  po.url = etcd->Url("trio");
  auto placer = kvstore::cluster::ClusterClient::Connect(po);
  auto members = (*placer)->membership();

  // Warm-up: connections open, pages faulted.
  (void)InsertDrop(*direct, 4, value, sink);
  (void)InsertDrop(*via_cluster, 4, value, sink);
  (void)Aggregate(*via_cluster, 4, 2, value);
  (void)Aggregate(*trio_client, 4, 2, value);

  Series d_bw, c_bw, d_match, c_match, place_ns, agg1, agg3;
  for (int r = 0; r < rounds; ++r) {
    // Each pair runs back to back, in alternating order, so drift favours neither side.
    const std::pair<std::pair<Series*, std::function<double()>>,
                    std::pair<Series*, std::function<double()>>>
        pairs[] = {
            {{&d_bw, [&] { return InsertDrop(*direct, ops, value, sink); }},
             {&c_bw, [&] { return InsertDrop(*via_cluster, ops, value, sink); }}},
            {{&d_match, [&] { return Match(*direct, prefix, 2000); }},
             {&c_match, [&] { return Match(*via_cluster, prefix, 2000); }}},
            {{&agg1, [&] { return Aggregate(*via_cluster, 4, ops / 4, value); }},
             {&agg3, [&] { return Aggregate(*trio_client, 4, ops / 4, value); }}},
        };
    for (const auto& [first, second] : pairs) {
      const auto& a = r % 2 == 0 ? first : second;
      const auto& b = r % 2 == 0 ? second : first;
      a.first->v.push_back(a.second());
      b.first->v.push_back(b.second());
    }
    auto t0 = Clock::now();
    size_t sum = 0;
    for (int i = 0; i < 100000; ++i) sum += members->HomeIndex(prefix[i % prefix.size()]);
    place_ns.v.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count() /
                         100000.0);
    if (sum == SIZE_MAX) std::printf(" ");  // keeps the loop
  }

  std::printf(
      "kvstore-cluster-bench: %d interleaved rounds, %d x 4 MiB per round, loopback, "
      "transport %s\n",
      rounds, ops, direct->TransferStats().transport.c_str());
  std::printf("overhead (one node: direct HOST:PORT vs etcd:// cluster address)\n");
  Print("4 MiB insert+drop_select, direct", "GB/s", d_bw);
  Print("4 MiB insert+drop_select, cluster", "GB/s", c_bw);
  std::printf("  %-46s %10.3f\n", "ratio cluster/direct (median)", c_bw.median() / d_bw.median());
  Print("match_prefix of 32 keys, direct", "us", d_match);
  Print("match_prefix of 32 keys, cluster", "us", c_match);
  std::printf("  %-46s %10.3f\n", "ratio cluster/direct (median)",
              c_match.median() / d_match.median());
  std::printf("placement\n");
  Print("rendezvous home of a key over 3 members", "ns", place_ns);
  std::printf("aggregate (4 threads, 4 MiB insert+drop_select, cluster client)\n");
  Print("1 node", "GB/s", agg1);
  Print("3 nodes", "GB/s", agg3);
  std::printf("  %-46s %10.3f\n", "ratio 3 nodes / 1 node (median)", agg3.median() / agg1.median());
  std::printf("(2 cores run every node, etcd and this client: the aggregate cannot scale here)\n");
  return 0;
}
