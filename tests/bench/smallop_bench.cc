// kvstore-smallop-bench: small-operation throughput and latency against kvstored over
// loopback TCP, beside a raw 64-byte TCP ping-pong that shows the floor.
//
//   kvstore-smallop-bench                      # starts its own kvstored (built next to it)
//   kvstore-smallop-bench --addr 127.0.0.1:7400 --threads 8 --seconds 5 --json
//
// Every case runs with 1 thread and with --threads threads sharing one Client.
// Then the batched case: --batch single inserts of --batch-value bytes against
// one InsertMany of the same, interleaved, in 3 rounds (median and min-max of
// the rounds' medians, and their ratio).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <random>

#include "bench_util.h"
#include "kvstore/client.h"
#include "kvstore/units.h"
#include "raw_pingpong.h"

namespace kvstore::bench {
namespace {

constexpr size_t kValueSize = 4096;
constexpr size_t kPrefixKeys = 32;
constexpr auto kDropTimeout = std::chrono::seconds(5);

// Keys unique to this run, thread and iteration, so reruns against one daemon never meet.
Key MakeKey(uint64_t run, uint32_t kind, uint32_t thread, uint64_t i) {
  Key k;
  std::memcpy(k.bytes.data(), &run, 8);
  std::memcpy(k.bytes.data() + 8, &kind, 4);
  std::memcpy(k.bytes.data() + 12, &thread, 4);
  std::memcpy(k.bytes.data() + 16, &i, 8);
  return k;
}

std::string Fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

struct Spread {
  double median = 0, min = 0, max = 0;
};

Spread SpreadOf(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v.front(), v.back()};
}

std::string Show(const Spread& s, int decimals) {
  return Fixed(s.median, decimals) + " (" + Fixed(s.min, decimals) + "-" + Fixed(s.max, decimals) +
         ")";
}

struct BatchResult {
  Spread singles_us, batched_us, ratio;  // per batch of N values; ratio = singles / batched
  std::string error;
};

// N single inserts against one InsertMany of N, `reps` of each per round,
// interleaved so both see the same machine; each round gives the median of its reps.
BatchResult RunBatched(Client& client, uint64_t run, size_t n, size_t value_bytes, int rounds,
                       int reps, bool shared) {
  std::vector<std::byte> value(value_bytes);
  for (size_t i = 0; i < value.size(); ++i) value[i] = static_cast<std::byte>(i * 31 + 3);
  BatchResult out;
  // --shared-values: each value in memory shared with the daemon (pulled one-sided over local).
  std::vector<std::span<const std::byte>> values(n, value);
  Result<SharedRegion> region =
      shared ? client.AllocateSharedRegion(n * value_bytes) : Result<SharedRegion>(SharedRegion{});
  if (!region.ok()) return {{}, {}, {}, "shared region: " + region.status().ToString()};
  for (size_t i = 0; shared && i < n; ++i) {
    values[i] = region->memory.subspan(i * value_bytes, value_bytes);
    std::memcpy(region->memory.data() + i * value_bytes, value.data(), value_bytes);
  }
  std::vector<double> singles, batched, ratios;
  for (int r = 0; r < rounds; ++r) {
    std::vector<double> s_us, b_us;
    for (int rep = 0; rep < reps; ++rep) {
      const auto tag = static_cast<uint32_t>(r * reps + rep);
      std::vector<Key> keys;
      auto t0 = std::chrono::steady_clock::now();
      for (size_t i = 0; i < n; ++i) {
        keys.push_back(MakeKey(run, 100, tag, i));
        auto ins = client.Insert(keys.back(), values[i]);
        if (!ins.ok() || !*ins) {
          out.error = "single insert: " + (ins.ok() ? "not stored" : ins.status().ToString());
          return out;
        }
      }
      auto t1 = std::chrono::steady_clock::now();
      std::vector<InsertItem> items;
      for (size_t i = 0; i < n; ++i) items.push_back({MakeKey(run, 101, tag, i), values[i], {}});
      auto t2 = std::chrono::steady_clock::now();
      auto many = client.InsertMany(items);
      auto t3 = std::chrono::steady_clock::now();
      if (!many.ok()) {
        out.error = "insert_many: " + many.status().ToString();
        return out;
      }
      for (auto& one : *many) {
        if (!one.ok() || !*one) {
          out.error = "insert_many item: " + (one.ok() ? "not stored" : one.status().ToString());
          return out;
        }
      }
      s_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
      b_us.push_back(std::chrono::duration<double, std::micro>(t3 - t2).count());
      (void)client.Remove(keys);
      for (auto& it : items) keys.push_back(it.key);
      (void)client.Remove(keys);
    }
    singles.push_back(SpreadOf(s_us).median);
    batched.push_back(SpreadOf(b_us).median);
    ratios.push_back(singles.back() / batched.back());
  }
  out.singles_us = SpreadOf(singles);
  out.batched_us = SpreadOf(batched);
  out.ratio = SpreadOf(ratios);
  return out;
}

struct Row {
  CaseResult r;
  double ratio = 0;  // p50 / raw p50 at the same thread count
};

void PrintRows(const std::vector<Row>& rows) {
  std::vector<std::vector<std::string>> t = {
      {"case", "threads", "ops/s", "p50 us", "p99 us", "p999 us", "p50/raw", "errors"}};
  for (const Row& row : rows) {
    const CaseResult& r = row.r;
    t.push_back({r.name, std::to_string(r.threads), Fixed(r.ops_per_sec, 0), Fixed(r.p50_us, 1),
                 Fixed(r.p99_us, 1), Fixed(r.p999_us, 1),
                 row.ratio > 0 ? Fixed(row.ratio, 2) + "x" : "-", std::to_string(r.errors)});
  }
  std::vector<size_t> w(t[0].size(), 0);
  for (auto& line : t) {
    for (size_t i = 0; i < line.size(); ++i) w[i] = std::max(w[i], line[i].size());
  }
  for (auto& line : t) {
    std::string s;
    for (size_t i = 0; i < line.size(); ++i) {
      std::string pad(w[i] - line[i].size(), ' ');
      s += i == 0 ? line[i] + pad : pad + line[i];  // numbers right-aligned
      s += "  ";
    }
    std::cout << s << "\n";
  }
  for (const Row& row : rows) {
    if (!row.r.first_error.empty()) {
      std::cout << "first error in \"" << row.r.name << "\" (" << row.r.threads
                << " threads): " << row.r.first_error << "\n";
    }
  }
  std::cout << std::flush;
}

int Main(int argc, char** argv) {
  CLI::App app{"kvstore-smallop-bench: small-op throughput and latency on loopback"};
  std::string addr;
  std::string kvstored = DefaultKvstored();
  std::string memory = "1GiB";
  double seconds = 2;
  int threads = 4;
  bool json = false;
  size_t batch = 64;
  size_t batch_value = 1024;
  app.add_option("--addr", addr, "benchmark a running kvstored at HOST:PORT");
  app.add_option("--kvstored", kvstored, "daemon to start when --addr is not given")
      ->capture_default_str();
  app.add_option("--memory", memory, "--memory for the daemon this program starts")
      ->capture_default_str();
  app.add_option("--seconds", seconds, "measured time per case")->capture_default_str();
  app.add_option("--threads", threads, "client threads for the multi-threaded runs")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_flag("--json", json, "print JSON instead of a table");
  app.add_option("--batch", batch, "values per InsertMany in the batched case (0 = skip it)")
      ->capture_default_str();
  app.add_option("--batch-value", batch_value, "bytes per value in the batched case")
      ->capture_default_str();
  bool shared_values = false;
  app.add_flag("--shared-values", shared_values, "batched case: values in shared memory");
  CLI11_PARSE(app, argc, argv);

  DaemonProcess daemon;
  if (addr.empty()) {
    if (Status s = daemon.Start(kvstored, memory); !s.ok()) {
      std::cerr << "kvstore-smallop-bench: cannot start kvstored: " << s.ToString() << std::endl;
      return 5;
    }
    addr = daemon.address();
  }

  ClientOptions opts;
  opts.address = addr;
  opts.client_name = "kvstore-smallop-bench";
  opts.max_connections = static_cast<size_t>(threads) + 1;
  auto connected = Client::Connect(opts);
  if (!connected.ok()) {
    std::cerr << "kvstore-smallop-bench: " << connected.status().ToString() << std::endl;
    return 5;
  }
  Client& client = **connected;

  uint64_t run = std::random_device{}() | (uint64_t{std::random_device{}()} << 32);
  std::vector<std::byte> value(kValueSize);
  for (size_t i = 0; i < value.size(); ++i) value[i] = static_cast<std::byte>(i * 131 + 7);

  // Stored up front: a 32-block prompt for match_prefix, one 4 KiB entry per thread for select.
  std::vector<Key> prefix;
  for (size_t i = 0; i < kPrefixKeys; ++i) prefix.push_back(MakeKey(run, 1, 0, i));
  std::vector<Key> select_keys;
  for (int t = 0; t < threads; ++t) select_keys.push_back(MakeKey(run, 2, t, 0));
  for (const Key& k : prefix) {
    if (auto r = client.Insert(k, value); !r.ok()) {
      std::cerr << "kvstore-smallop-bench: setup insert failed: " << r.status().ToString()
                << std::endl;
      return 5;
    }
  }
  for (const Key& k : select_keys) {
    if (auto r = client.Insert(k, value); !r.ok()) {
      std::cerr << "kvstore-smallop-bench: setup insert failed: " << r.status().ToString()
                << std::endl;
      return 5;
    }
  }

  std::vector<int> thread_counts = {1};
  if (threads > 1) thread_counts.push_back(threads);
  std::vector<Row> rows;
  if (!json) {
    std::cerr << "kvstored at " << addr << ", " << seconds << " s per case, threads "
              << (threads > 1 ? "1 and " + std::to_string(threads) : "1") << std::endl;
  }
  for (int n : thread_counts) {
    // The floor moves with whatever else the machine runs: measure it before and after the
    // store's cases and compare against the better of the two.
    CaseResult raw = RunRawPingPong(n, seconds);
    size_t raw_row = rows.size();
    rows.push_back({raw, 1.0});
    auto add = [&](CaseResult r) {
      double ratio = raw.p50_us > 0 ? r.p50_us / raw.p50_us : 0;
      rows.push_back({std::move(r), ratio});
    };
    add(RunTimed("ping", n, seconds, 100, [&](int, uint64_t) { return client.Ping(); }));
    add(RunTimed("match_prefix 1 key", n, seconds, 100, [&](int, uint64_t) -> Status {
      auto m = client.MatchPrefix(std::span(prefix).first(1));
      if (!m.ok()) return m.status();
      return *m == 1
                 ? Status::Ok()
                 : Status::Internal("match_prefix returned " + std::to_string(*m) + ", expected 1");
    }));
    add(RunTimed("match_prefix 32 keys", n, seconds, 100, [&](int, uint64_t) -> Status {
      auto m = client.MatchPrefix(prefix);
      if (!m.ok()) return m.status();
      return *m == kPrefixKeys ? Status::Ok()
                               : Status::Internal("match_prefix returned " + std::to_string(*m) +
                                                  ", expected 32");
    }));
    add(RunTimed("insert+drop_select 4KiB", n, seconds, 20, [&](int t, uint64_t i) -> Status {
      Key k = MakeKey(run, 3 + static_cast<uint32_t>(n), static_cast<uint32_t>(t), i);
      auto ins = client.Insert(k, value);
      if (!ins.ok()) return ins.status().WithContext("insert");
      auto got = client.DropSelect(std::span(&k, 1), kDropTimeout);
      if (!got.ok()) return got.status().WithContext("drop_select");
      return got->size() == 1 && (*got)[0].value.size() == kValueSize
                 ? Status::Ok()
                 : Status::Internal("drop_select returned the wrong size");
    }));
    add(RunTimed("select 4KiB", n, seconds, 100, [&](int t, uint64_t) -> Status {
      auto got = client.Select(std::span(&select_keys[t], 1));
      if (!got.ok()) return got.status();
      return (*got)[0].value.size() == kValueSize ? Status::Ok()
                                                  : Status::Internal("select: wrong size");
    }));
    CaseResult raw_after = RunRawPingPong(n, seconds);
    if (raw_after.errors == 0 && raw_after.p50_us > 0 && raw_after.p50_us < raw.p50_us) {
      rows[raw_row].r = raw_after;
      for (size_t i = raw_row + 1; i < rows.size(); ++i) {
        rows[i].ratio = rows[i].r.p50_us / raw_after.p50_us;
      }
    }
    rows[raw_row].r.name = "raw tcp 64B ping-pong (best of 2)";
  }

  (void)client.Remove(prefix);
  (void)client.Remove(select_keys);

  BatchResult batched;
  if (batch > 0) batched = RunBatched(client, run, batch, batch_value, 3, 20, shared_values);

  if (json) {
    nlohmann::json cases = nlohmann::json::array();
    for (const Row& row : rows) {
      const CaseResult& r = row.r;
      cases.push_back({{"case", r.name},
                       {"threads", r.threads},
                       {"ops", r.ops},
                       {"seconds", r.seconds},
                       {"ops_per_sec", r.ops_per_sec},
                       {"p50_us", r.p50_us},
                       {"p99_us", r.p99_us},
                       {"p999_us", r.p999_us},
                       {"p50_vs_raw", row.ratio},
                       {"errors", r.errors},
                       {"first_error", r.first_error}});
    }
    std::cout << nlohmann::json{{"addr", addr},
                                {"value_bytes", kValueSize},
                                {"seconds_per_case", seconds},
                                {"cases", cases},
                                {"batched",
                                 {{"values", batch},
                                  {"value_bytes", batch_value},
                                  {"singles_us_median", batched.singles_us.median},
                                  {"insert_many_us_median", batched.batched_us.median},
                                  {"ratio_median", batched.ratio.median},
                                  {"ratio_min", batched.ratio.min},
                                  {"ratio_max", batched.ratio.max},
                                  {"error", batched.error}}}}
                     .dump(2)
              << std::endl;
  } else {
    PrintRows(rows);
    if (batch > 0 && batched.error.empty()) {
      std::cout << "\nbatched insert over " << client.TransferStats().transport
                << (shared_values ? ", values in shared memory" : "") << ", " << batch << " x "
                << batch_value
                << " B, 3 interleaved rounds (median of 20 each; median (min-max) of rounds):\n"
                << "  " << batch << " single inserts: " << Show(batched.singles_us, 0) << " us\n"
                << "  one insert_many:    " << Show(batched.batched_us, 0) << " us\n"
                << "  singles / insert_many: " << Show(batched.ratio, 2) << "x\n";
    }
  }
  if (!batched.error.empty()) {
    std::cerr << "kvstore-smallop-bench: batched case failed: " << batched.error << std::endl;
  }
  connected->reset();
  int errors = 0;
  for (const Row& row : rows) errors += row.r.errors > 0;
  errors += batched.error.empty() ? 0 : 1;
  daemon.Stop();  // reports on stderr if it died or exited badly
  return errors > 0 ? 5 : 0;
}

}  // namespace
}  // namespace kvstore::bench

int main(int argc, char** argv) { return kvstore::bench::Main(argc, argv); }
