// kvstore-durable-bench: insert throughput of kvstored with --durability sync
// (write-through to the spill tier, group commit) beside --durability none,
// both started by this program with the same memory and spill tier. Prints,
// per value size and client count, the median and min-max of interleaved
// rounds for each mode and the ratio of the medians. Asserts nothing.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "kvstore/client.h"
#include "kvstore/units.h"
#include "test_daemon.h"
#include "values.h"

namespace kvstore::chaos {
namespace {

using testing::DaemonOptions;
using testing::TempDir;
using testing::TestDaemon;

struct Case {
  uint64_t size = 0;
  int clients = 0;
  std::vector<double> mbps[2];  // [none, sync], one per round
};

// `ops` inserts of `size` bytes split over `clients` threads; MB/s (0 on an error).
double RunInserts(const TestDaemon& d, uint64_t size, int clients, int ops, uint64_t run) {
  std::vector<std::unique_ptr<Client>> conns;
  for (int c = 0; c < clients; ++c) {
    ClientOptions o;
    o.address = d.address();
    o.transport = "tcp";
    auto client = Client::Connect(o);
    if (!client.ok()) {
      std::fprintf(stderr, "connect: %s\n", client.status().ToString().c_str());
      return 0;
    }
    conns.push_back(std::move(client).value());
  }
  std::vector<Key> keys;
  std::vector<std::vector<std::byte>> values;
  for (int i = 0; i < ops; ++i) {
    keys.push_back(ChaosKey(run, static_cast<uint64_t>(i)));
    values.push_back(ValueFor(keys.back(), size));
  }
  std::atomic<int> next{0}, failed{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      for (int i; (i = next.fetch_add(1)) < ops;) {
        auto r = conns[c]->Insert(keys[i], values[i]);
        if (!r.ok() && failed.fetch_add(1) == 0) {
          std::fprintf(stderr, "insert: %s\n", r.status().ToString().c_str());
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  (void)conns[0]->Remove(keys);  // not measured: keeps memory and disk at the baseline
  if (failed.load() > 0) return 0;
  return static_cast<double>(size) * ops / secs / 1e6;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

int Main(int argc, char** argv) {
  CLI::App app{"kvstore-durable-bench: insert throughput, --durability sync beside none"};
  std::string sizes_text = "64KiB,1MiB,4MiB";
  std::vector<int> client_counts = {1, 4};
  int rounds = 3;
  std::string bytes_text = "64MiB";
  std::string memory = "256MiB", spill = "2GiB";
  int io_threads = 2;
  app.add_option("--sizes", sizes_text, "value sizes, comma-separated")->capture_default_str();
  app.add_option("--clients", client_counts, "concurrent clients, comma-separated")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--rounds", rounds, "interleaved rounds")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  app.add_option("--bytes", bytes_text, "bytes inserted per case and round")->capture_default_str();
  app.add_option("--memory", memory, "kvstored --memory")->capture_default_str();
  app.add_option("--spill", spill, "kvstored --spill (both modes)")->capture_default_str();
  app.add_option("--io-threads", io_threads, "kvstored --io-threads")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  auto bytes = ParseSize(bytes_text);
  if (!bytes.ok()) {
    std::fprintf(stderr, "--bytes: %s\n", bytes.status().ToString().c_str());
    return 2;
  }
  const uint64_t bytes_per_case = *bytes;
  std::vector<uint64_t> sizes;
  for (size_t at = 0; at <= sizes_text.size();) {
    size_t comma = std::min(sizes_text.find(',', at), sizes_text.size());
    auto s = ParseSize(sizes_text.substr(at, comma - at));
    if (!s.ok()) {
      std::fprintf(stderr, "--sizes: %s\n", s.status().ToString().c_str());
      return 2;
    }
    sizes.push_back(*s);
    at = comma + 1;
  }

  const char* modes[2] = {"none", "sync"};
  TempDir dirs[2] = {TempDir("kvstore-durable-bench"), TempDir("kvstore-durable-bench")};
  std::unique_ptr<TestDaemon> daemons[2];
  for (int m = 0; m < 2; ++m) {
    DaemonOptions o;
    o.args = {"--memory", memory,         "--spill", spill,          "--ttl",
              "0",        "--durability", modes[m],  "--io-threads", std::to_string(io_threads)};
    o.data_dir = dirs[m].path();
    std::string error;
    daemons[m] = TestDaemon::Start(o, &error);
    if (!daemons[m]) {
      std::fprintf(stderr, "kvstored --durability %s: %s\n", modes[m], error.c_str());
      return 5;
    }
  }

  std::vector<Case> cases;
  for (uint64_t size : sizes) {
    for (int clients : client_counts) cases.push_back({size, clients, {}});
  }
  std::mt19937_64 rng(std::random_device{}());
  for (int round = 0; round < rounds; ++round) {
    for (Case& c : cases) {
      const int ops = static_cast<int>(std::max<uint64_t>(bytes_per_case / c.size, 8));
      // Alternate which mode goes first, so neither always runs on a warmer system.
      for (int k = 0; k < 2; ++k) {
        const int m = (round + k) % 2;
        c.mbps[m].push_back(RunInserts(*daemons[m], c.size, c.clients, ops, rng()));
      }
      std::fprintf(stderr, "round %d/%d: %s x %d clients: none %.0f MB/s, sync %.0f MB/s\n",
                   round + 1, rounds, FormatSize(c.size).c_str(), c.clients, c.mbps[0].back(),
                   c.mbps[1].back());
    }
  }

  std::printf(
      "insert throughput, MB/s: median (min-max) of %d interleaved rounds; "
      "kvstored --memory %s --spill %s --io-threads %d, tcp\n",
      rounds, memory.c_str(), spill.c_str(), io_threads);
  std::printf("%-8s %7s  %-24s %-24s %s\n", "size", "clients", "durability none", "durability sync",
              "sync/none");
  for (const Case& c : cases) {
    char col[2][64];
    for (int m = 0; m < 2; ++m) {
      auto [lo, hi] = std::minmax_element(c.mbps[m].begin(), c.mbps[m].end());
      std::snprintf(col[m], sizeof(col[m]), "%.0f (%.0f-%.0f)", Median(c.mbps[m]), *lo, *hi);
    }
    const double none = Median(c.mbps[0]);
    std::printf("%-8s %7d  %-24s %-24s %.2f\n", FormatSize(c.size).c_str(), c.clients, col[0],
                col[1], none > 0 ? Median(c.mbps[1]) / none : 0.0);
  }
  for (auto& d : daemons) d->StopWith(SIGTERM);
  return 0;
}

}  // namespace
}  // namespace kvstore::chaos

int main(int argc, char** argv) { return kvstore::chaos::Main(argc, argv); }
