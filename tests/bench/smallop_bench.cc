// kvstore-smallop-bench: small-operation throughput and latency against kvstored over
// loopback TCP (or the local transport), beside a raw 64-byte TCP ping-pong that
// shows the floor, in interleaved rounds: each round measures the raw ping-pong,
// then every case; the table gives median (min-max) over rounds and each case's
// p50 against the same round's raw p50.
//
//   kvstore-smallop-bench                      # starts its own kvstored (built next to it)
//   kvstore-smallop-bench --rounds 5 --threads 8 --seconds 1 --json
//   kvstore-smallop-bench --compare-kvstored /path/to/older/kvstored   # before/after
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
#include <functional>
#include <iostream>
#include <map>
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

// One daemon under test: the one this build made, and optionally another
// (--compare-kvstored, e.g. an older build) measured in the same rounds.
struct Target {
  std::string label;
  DaemonProcess daemon;
  std::unique_ptr<Client> client;
  std::string transport;  // what the client negotiated
  std::vector<Key> prefix;
  std::vector<Key> select_keys;
};

struct Case {
  std::string name;
  int warmup = 100;
  // `round` keeps keys of different rounds apart (the iteration restarts each round).
  std::function<Status(Target&, int thread, uint64_t i, int threads, uint32_t round)> op;
};

// Per (threads, target, case): one figure per round.
struct Series {
  std::vector<double> ops, p50, p99, vs_raw;  // vs_raw = p50 / that round's raw p50
  uint64_t errors = 0;
  std::string first_error;
};

std::vector<Case> Cases(uint64_t run, const std::vector<std::byte>& value) {
  return {
      {"ping", 100, [](Target& t, int, uint64_t, int, uint32_t) { return t.client->Ping(); }},
      {"match_prefix 1 key", 100,
       [](Target& t, int, uint64_t, int, uint32_t) -> Status {
         auto m = t.client->MatchPrefix(std::span(t.prefix).first(1));
         if (!m.ok()) return m.status();
         return *m == 1 ? Status::Ok()
                        : Status::Internal("match_prefix returned " + std::to_string(*m) +
                                           ", expected 1");
       }},
      {"match_prefix 32 keys", 100,
       [](Target& t, int, uint64_t, int, uint32_t) -> Status {
         auto m = t.client->MatchPrefix(t.prefix);
         if (!m.ok()) return m.status();
         return *m == kPrefixKeys ? Status::Ok()
                                  : Status::Internal("match_prefix returned " + std::to_string(*m) +
                                                     ", expected 32");
       }},
      {"insert+drop_select 4KiB", 20,
       [run, &value](Target& t, int thread, uint64_t i, int threads, uint32_t round) -> Status {
         Key k = MakeKey(run, 16 + static_cast<uint32_t>(threads) + (round << 16),
                         static_cast<uint32_t>(thread), i);
         auto ins = t.client->Insert(k, value);
         if (!ins.ok()) return ins.status().WithContext("insert");
         auto got = t.client->DropSelect(std::span(&k, 1), kDropTimeout);
         if (!got.ok()) return got.status().WithContext("drop_select");
         return got->size() == 1 && (*got)[0].value.size() == kValueSize
                    ? Status::Ok()
                    : Status::Internal("drop_select returned the wrong size");
       }},
      {"select 4KiB", 100,
       [](Target& t, int thread, uint64_t, int, uint32_t) -> Status {
         auto got = t.client->Select(std::span(&t.select_keys[thread], 1));
         if (!got.ok()) return got.status();
         return (*got)[0].value.size() == kValueSize ? Status::Ok()
                                                     : Status::Internal("select: wrong size");
       }},
  };
}

Status Prepare(Target& t, const std::string& transport, int threads, uint64_t run,
               const std::vector<std::byte>& value, uint32_t kind_base) {
  ClientOptions opts;
  opts.address = t.daemon.address();
  opts.client_name = "kvstore-smallop-bench";
  opts.max_connections = static_cast<size_t>(threads) + 1;
  opts.transport = transport;
  KVSTORE_ASSIGN_OR_RETURN(t.client, Client::Connect(opts));
  // A 32-block prompt for match_prefix, one 4 KiB entry per thread for select.
  for (size_t i = 0; i < kPrefixKeys; ++i) t.prefix.push_back(MakeKey(run, kind_base, 0, i));
  for (int i = 0; i < threads; ++i) t.select_keys.push_back(MakeKey(run, kind_base + 1, i, 0));
  for (const auto* keys : {&t.prefix, &t.select_keys}) {
    for (const Key& k : *keys) {
      auto r = t.client->Insert(k, value);
      if (!r.ok()) return r.status().WithContext("setup insert on " + t.label);
    }
  }
  t.transport = t.client->TransferStats().transport;
  return Status::Ok();
}

void PrintTable(const std::vector<std::vector<std::string>>& t) {
  std::vector<size_t> w(t[0].size(), 0);
  for (auto& line : t) {
    for (size_t i = 0; i < line.size(); ++i) w[i] = std::max(w[i], line[i].size());
  }
  for (auto& line : t) {
    std::string s;
    for (size_t i = 0; i < line.size(); ++i) {
      std::string pad(w[i] - line[i].size(), ' ');
      s += i <= 1 ? line[i] + pad : pad + line[i];  // numbers right-aligned
      s += "  ";
    }
    std::cout << s << "\n";
  }
}

int Main(int argc, char** argv) {
  CLI::App app{"kvstore-smallop-bench: small-op throughput and latency on loopback"};
  std::string kvstored = DefaultKvstored();
  std::string compare;
  std::string memory = "1GiB";
  std::string transport = "tcp";
  double seconds = 2;
  int threads = 4;
  int rounds = 3;
  bool json = false;
  size_t batch = 64;
  size_t batch_value = 1024;
  app.add_option("--kvstored", kvstored, "the daemon to measure")->capture_default_str();
  app.add_option("--compare-kvstored", compare,
                 "a second daemon (e.g. an older build) measured in the same rounds; the "
                 "table adds its figures and the ratio of the two");
  app.add_option("--memory", memory, "--memory for the daemons this program starts")
      ->capture_default_str();
  app.add_option("--transport", transport, "client transport: tcp, local or auto")
      ->capture_default_str()
      ->check(CLI::IsMember({"tcp", "local", "auto"}));
  app.add_option("--seconds", seconds, "measured time per case and round")->capture_default_str();
  app.add_option("--threads", threads, "client threads for the multi-threaded runs")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--rounds", rounds, "interleaved rounds (median and min-max are reported)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app.add_flag("--json", json, "print JSON instead of a table");
  app.add_option("--batch", batch, "values per InsertMany in the batched case (0 = skip it)")
      ->capture_default_str();
  app.add_option("--batch-value", batch_value, "bytes per value in the batched case")
      ->capture_default_str();
  bool shared_values = false;
  app.add_flag("--shared-values", shared_values, "batched case: values in shared memory");
  CLI11_PARSE(app, argc, argv);

  const uint64_t run = std::random_device{}() | (uint64_t{std::random_device{}()} << 32);
  std::vector<std::byte> value(kValueSize);
  for (size_t i = 0; i < value.size(); ++i) value[i] = static_cast<std::byte>(i * 131 + 7);

  std::vector<std::unique_ptr<Target>> targets;
  for (const std::string& binary : {kvstored, compare}) {
    if (binary.empty()) continue;
    auto t = std::make_unique<Target>();
    t->label = targets.empty() ? "this" : "compared";
    if (Status s = t->daemon.Start(binary, memory); !s.ok()) {
      std::cerr << "kvstore-smallop-bench: cannot start " << binary << ": " << s.ToString()
                << std::endl;
      return 5;
    }
    if (Status s = Prepare(*t, transport, threads, run, value,
                           static_cast<uint32_t>(1 + 2 * targets.size()));
        !s.ok()) {
      std::cerr << "kvstore-smallop-bench: " << s.ToString() << std::endl;
      return 5;
    }
    targets.push_back(std::move(t));
  }
  if (!json) {
    std::cerr << "daemons: this = " << kvstored
              << (compare.empty() ? "" : ", compared = " + compare) << "; transport asked "
              << transport << ", negotiated " << targets[0]->transport << "; " << rounds
              << " interleaved rounds of " << seconds << " s per case; threads 1 and " << threads
              << std::endl;
  }

  const std::vector<Case> cases = Cases(run, value);
  std::vector<int> thread_counts = {1};
  if (threads > 1) thread_counts.push_back(threads);
  // series[n][target][case]; raw[n] per round.
  std::map<int, std::vector<std::vector<Series>>> series;
  std::map<int, Series> raw;
  for (int n : thread_counts) {
    series[n].assign(targets.size(), std::vector<Series>(cases.size()));
  }
  for (int round = 0; round < rounds; ++round) {
    for (int n : thread_counts) {
      CaseResult base = RunRawPingPong(n, seconds);
      Series& rs = raw[n];
      rs.ops.push_back(base.ops_per_sec);
      rs.p50.push_back(base.p50_us);
      rs.p99.push_back(base.p99_us);
      rs.vs_raw.push_back(1.0);
      // Alternate which daemon goes first, so neither always runs on a warmer machine.
      for (size_t k = 0; k < targets.size(); ++k) {
        const size_t ti = (k + static_cast<size_t>(round)) % targets.size();
        Target& t = *targets[ti];
        for (size_t c = 0; c < cases.size(); ++c) {
          CaseResult r =
              RunTimed(cases[c].name, n, seconds, cases[c].warmup, [&](int th, uint64_t i) {
                return cases[c].op(t, th, i, n, static_cast<uint32_t>(round));
              });
          Series& s = series[n][ti][c];
          s.ops.push_back(r.ops_per_sec);
          s.p50.push_back(r.p50_us);
          s.p99.push_back(r.p99_us);
          s.vs_raw.push_back(base.p50_us > 0 ? r.p50_us / base.p50_us : 0);
          s.errors += r.errors;
          if (s.first_error.empty()) s.first_error = r.first_error;
        }
      }
    }
  }
  for (auto& t : targets) {
    (void)t->client->Remove(t->prefix);
    (void)t->client->Remove(t->select_keys);
  }

  BatchResult batched;
  if (batch > 0) {
    batched = RunBatched(*targets[0]->client, run, batch, batch_value, 3, 20, shared_values);
  }

  int errors = 0;
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (int n : thread_counts) {
      auto spread = [](const std::vector<double>& v) {
        Spread s = SpreadOf(v);
        return nlohmann::json{{"median", s.median}, {"min", s.min}, {"max", s.max}};
      };
      out.push_back({{"case", "raw tcp 64B ping-pong"},
                     {"threads", n},
                     {"ops_per_sec", spread(raw[n].ops)},
                     {"p50_us", spread(raw[n].p50)}});
      for (size_t ti = 0; ti < targets.size(); ++ti) {
        for (size_t c = 0; c < cases.size(); ++c) {
          const Series& s = series[n][ti][c];
          out.push_back({{"case", cases[c].name},
                         {"daemon", targets[ti]->label},
                         {"threads", n},
                         {"ops_per_sec", spread(s.ops)},
                         {"p50_us", spread(s.p50)},
                         {"p99_us", spread(s.p99)},
                         {"p50_vs_raw", spread(s.vs_raw)},
                         {"errors", s.errors},
                         {"first_error", s.first_error}});
        }
      }
    }
    std::cout << nlohmann::json{{"transport", transport},
                                {"rounds", rounds},
                                {"seconds_per_case", seconds},
                                {"value_bytes", kValueSize},
                                {"cases", out},
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
    std::vector<std::vector<std::string>> t = {
        {"case", "daemon", "threads", "ops/s", "p50 us", "p99 us", "p50/raw p50"}};
    if (targets.size() > 1) t[0].push_back("ops/s this/compared");
    for (int n : thread_counts) {
      t.push_back({"raw tcp 64B ping-pong", "-", std::to_string(n), Show(SpreadOf(raw[n].ops), 0),
                   Show(SpreadOf(raw[n].p50), 1), Show(SpreadOf(raw[n].p99), 1), "1"});
      if (targets.size() > 1) t.back().push_back("-");
      for (size_t c = 0; c < cases.size(); ++c) {
        for (size_t ti = 0; ti < targets.size(); ++ti) {
          const Series& s = series[n][ti][c];
          t.push_back({cases[c].name, targets[ti]->label, std::to_string(n),
                       Show(SpreadOf(s.ops), 0), Show(SpreadOf(s.p50), 1), Show(SpreadOf(s.p99), 1),
                       Show(SpreadOf(s.vs_raw), 2)});
          if (targets.size() > 1) {
            if (ti == 0) {
              std::vector<double> ratio;
              const Series& other = series[n][1][c];
              for (size_t r = 0; r < s.ops.size(); ++r) {
                ratio.push_back(other.ops[r] > 0 ? s.ops[r] / other.ops[r] : 0);
              }
              t.back().push_back(Show(SpreadOf(ratio), 2));
            } else {
              t.back().push_back("");
            }
          }
        }
      }
    }
    std::cout << "median (min-max) of " << rounds
              << " interleaved rounds; p50/raw p50 is per round against that round's raw "
                 "ping-pong\n";
    PrintTable(t);
    for (int n : thread_counts) {
      for (size_t ti = 0; ti < targets.size(); ++ti) {
        for (size_t c = 0; c < cases.size(); ++c) {
          const Series& s = series[n][ti][c];
          if (s.errors > 0) {
            std::cout << "errors in \"" << cases[c].name << "\" (" << targets[ti]->label << ", "
                      << n << " threads): " << s.errors << "; first: " << s.first_error << "\n";
          }
        }
      }
    }
    if (batch > 0 && batched.error.empty()) {
      std::cout << "\nbatched insert (this daemon) over " << targets[0]->transport
                << (shared_values ? ", values in shared memory" : "") << ", " << batch << " x "
                << batch_value
                << " B, 3 interleaved rounds (median of 20 each; median (min-max) of rounds):\n"
                << "  " << batch << " single inserts: " << Show(batched.singles_us, 0) << " us\n"
                << "  one insert_many:    " << Show(batched.batched_us, 0) << " us\n"
                << "  singles / insert_many: " << Show(batched.ratio, 2) << "x\n";
    }
    std::cout << std::flush;
  }
  for (auto& [n, per_target] : series) {
    for (auto& per_case : per_target) {
      for (auto& s : per_case) errors += s.errors > 0;
    }
  }
  if (!batched.error.empty()) {
    std::cerr << "kvstore-smallop-bench: batched case failed: " << batched.error << std::endl;
    ++errors;
  }
  for (auto& t : targets) {
    t->client.reset();
    t->daemon.Stop();  // reports on stderr if it died or exited badly
  }
  return errors > 0 ? 5 : 0;
}

}  // namespace
}  // namespace kvstore::bench

int main(int argc, char** argv) { return kvstore::bench::Main(argc, argv); }
