// kvstore-bench output: the table with ratios, the JSON document, and the per-byte costs
// that explain where a store op's time goes.
#include <xxhash.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <thread>
#include <tuple>

#include "kvstore/units.h"
#include "kvstore_bench.h"

namespace kvstore::bench {
namespace {

constexpr double kIssueRawRatio = 0.6;  // issue 4: 4 MiB insert+drop_select >= 0.6 of raw TCP
constexpr size_t kIssueSize = 4 << 20;

std::string Fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

using CaseKey = std::tuple<size_t, int, std::string>;

std::map<CaseKey, BulkResult> Index(const std::vector<BulkResult>& best) {
  std::map<CaseKey, BulkResult> m;
  for (const BulkResult& r : best) m[{r.size, r.clients, r.system}] = r;
  return m;
}

// our / theirs round-trip throughput, 0 when either did not run.
double Ratio(const std::map<CaseKey, BulkResult>& m, const BulkResult& ours,
             const std::string& theirs, double (BulkResult::*gbps)() const) {
  auto it = m.find({ours.size, ours.clients, theirs});
  if (it == m.end() || !it->second.Ran() || !ours.Ran()) return 0;
  double t = (it->second.*gbps)();
  return t > 0 ? (ours.*gbps)() / t : 0;
}

void PrintAligned(const std::vector<std::vector<std::string>>& t) {
  std::vector<size_t> w(t[0].size(), 0);
  for (auto& line : t) {
    for (size_t i = 0; i < line.size(); ++i) w[i] = std::max(w[i], line[i].size());
  }
  for (auto& line : t) {
    std::string s;
    for (size_t i = 0; i < line.size(); ++i) {
      std::string pad(w[i] - line[i].size(), ' ');
      s += i <= 2 ? line[i] + pad : pad + line[i];  // labels left, numbers right
      s += "  ";
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    std::cout << s << "\n";
  }
}

std::string Cores(double cpu_seconds, double wall) {
  return cpu_seconds >= 0 && wall > 0 ? Fixed(cpu_seconds / wall, 2) : "-";
}

}  // namespace

std::vector<BulkResult> MedianOfRounds(const std::vector<BulkResult>& all) {
  std::map<CaseKey, std::vector<BulkResult>> rounds;
  std::vector<CaseKey> order;
  for (const BulkResult& r : all) {
    CaseKey k{r.size, r.clients, r.system};
    if (!rounds.contains(k)) order.push_back(k);
    rounds[k].push_back(r);
  }
  std::vector<BulkResult> out;
  for (const CaseKey& k : order) {
    std::vector<BulkResult>& v = rounds[k];
    uint64_t errors = 0;
    std::string first;
    for (const BulkResult& r : v) {
      errors += r.errors;
      if (first.empty()) first = r.first_error;
    }
    std::sort(v.begin(), v.end(), [](const BulkResult& x, const BulkResult& y) {
      return x.RoundTripGBps() < y.RoundTripGBps();
    });
    BulkResult median = v[(v.size() - 1) / 2];  // the lower median for an even count
    median.errors = errors;
    median.first_error = first;
    out.push_back(std::move(median));
  }
  return out;
}

RoundSpread SpreadOf(const std::vector<BulkResult>& all, const BulkResult& ours,
                     const std::string& baseline) {
  // Round trip GB/s of `ours` over its rounds, and its ratio to `baseline`
  // round by round (the rounds interleave, so round i of each ran side by side).
  std::map<int, double> base;
  std::vector<double> gbps, ratio;
  for (const BulkResult& r : all) {
    if (r.size != ours.size || r.clients != ours.clients) continue;
    if (r.system == baseline && r.RoundTripGBps() > 0) base[r.round] = r.RoundTripGBps();
  }
  for (const BulkResult& r : all) {
    if (r.size != ours.size || r.clients != ours.clients || r.system != ours.system) continue;
    gbps.push_back(r.RoundTripGBps());
    if (auto it = base.find(r.round); it != base.end()) {
      ratio.push_back(r.RoundTripGBps() / it->second);
    }
  }
  auto median_min_max = [](std::vector<double> v, double* med, double* lo, double* hi) {
    if (v.empty()) return;
    std::sort(v.begin(), v.end());
    *med = v[(v.size() - 1) / 2];
    *lo = v.front();
    *hi = v.back();
  };
  RoundSpread out;
  median_min_max(gbps, &out.gbps_median, &out.gbps_min, &out.gbps_max);
  median_min_max(ratio, &out.ratio_median, &out.ratio_min, &out.ratio_max);
  return out;
}

void PrintTable(const BenchReport& report) {
  std::vector<BulkResult> best = MedianOfRounds(report.all);
  auto m = Index(best);
  std::cout << "kvstore-bench: insert + drop_select against kvstored at " << report.addr
            << " (transport " << report.transport << "), " << report.seconds_per_case
            << " s per case"
            << (report.max_ops > 0 ? ", at most " + std::to_string(report.max_ops) + " ops" : "")
            << ", the median round of " << report.rounds
            << " interleaved rounds (each case's round with the median round-trip GB/s)\n"
            << "GB/s = 1e9 value bytes per second. rt = round trip (put + get of one value, "
               "2 x size per op over wall time);\n"
            << "put/get GB/s = size / mean phase latency x clients. Baselines do the same two "
               "transfers per op:\n"
            << "raw-tcp = send + 1-byte ack, then 9-byte request + bytes back (cpu counts both "
               "ends); redis = SET then GETDEL.\n"
            << "cpu = cores busy during the case (client process / server process).\n"
            << "load average (1/5/15 min) before " << report.load_before << ", after "
            << report.load_after << " on " << std::thread::hardware_concurrency() << " cores\n\n";
  std::vector<std::vector<std::string>> t = {{"size", "clients", "system", "ops", "rt GB/s",
                                              "rt min-max", "put GB/s", "get GB/s", "rt p50 ms",
                                              "rt p99 ms", "put p50 ms", "get p50 ms", "rt/raw",
                                              "rt/redis", "cpu cli", "cpu srv", "errors"}};
  for (const BulkResult& r : best) {
    double vs_raw = r.system == "raw-tcp" ? 0 : Ratio(m, r, "raw-tcp", &BulkResult::RoundTripGBps);
    double vs_redis = r.system == "kvstore" ? Ratio(m, r, "redis", &BulkResult::RoundTripGBps) : 0;
    RoundSpread spread = SpreadOf(report.all, r, "raw-tcp");
    t.push_back({FormatSize(r.size), std::to_string(r.clients), r.system, std::to_string(r.ops),
                 Fixed(r.RoundTripGBps(), 2),
                 Fixed(spread.gbps_min, 2) + "-" + Fixed(spread.gbps_max, 2), Fixed(r.PutGBps(), 2),
                 Fixed(r.GetGBps(), 2), Fixed(r.round_trip.p50_us / 1000, 3),
                 Fixed(r.round_trip.p99_us / 1000, 3), Fixed(r.put.p50_us / 1000, 3),
                 Fixed(r.get.p50_us / 1000, 3), vs_raw > 0 ? Fixed(vs_raw, 2) : "-",
                 vs_redis > 0 ? Fixed(vs_redis, 2) : "-", Cores(r.client_cpu_seconds, r.seconds),
                 Cores(r.server_cpu_seconds, r.seconds), std::to_string(r.errors)});
  }
  PrintAligned(t);
  for (const BulkResult& r : best) {
    if (!r.first_error.empty()) {
      std::cout << "first error in " << r.system << " " << FormatSize(r.size) << " x" << r.clients
                << ": " << r.first_error << "\n";
    }
  }
  if (!report.redis_note.empty()) std::cout << "redis: " << report.redis_note << "\n";

  // Issue 4's bar, per client count at 4 MiB, and the per-phase ratios behind it.
  std::cout << "\n4 MiB insert+drop_select vs baselines (bar: rt/raw >= " << kIssueRawRatio
            << " and rt/redis > 1):\n";
  for (const BulkResult& r : best) {
    if (r.system != "kvstore" || r.size != kIssueSize) continue;
    double raw = Ratio(m, r, "raw-tcp", &BulkResult::RoundTripGBps);
    double redis = Ratio(m, r, "redis", &BulkResult::RoundTripGBps);
    bool ok = raw >= kIssueRawRatio && (redis == 0 || redis > 1);
    RoundSpread vs_raw = SpreadOf(report.all, r, "raw-tcp");
    RoundSpread vs_redis = SpreadOf(report.all, r, "redis");
    std::cout << "  clients " << r.clients << ": rt/raw by round " << Fixed(vs_raw.ratio_median, 2)
              << " (" << Fixed(vs_raw.ratio_min, 2) << "-" << Fixed(vs_raw.ratio_max, 2)
              << "), rt/redis by round "
              << (vs_redis.ratio_median > 0
                      ? Fixed(vs_redis.ratio_median, 2) + " (" + Fixed(vs_redis.ratio_min, 2) +
                            "-" + Fixed(vs_redis.ratio_max, 2) + ")"
                      : "n/a")
              << "; median rounds: rt/raw " << Fixed(raw, 2) << ", rt/redis "
              << (redis > 0 ? Fixed(redis, 2) : "n/a") << "; insert/raw-put "
              << Fixed(Ratio(m, r, "raw-tcp", &BulkResult::PutGBps), 2) << ", drop_select/raw-get "
              << Fixed(Ratio(m, r, "raw-tcp", &BulkResult::GetGBps), 2) << "; insert/SET "
              << Fixed(Ratio(m, r, "redis", &BulkResult::PutGBps), 2) << ", drop_select/GETDEL "
              << Fixed(Ratio(m, r, "redis", &BulkResult::GetGBps), 2) << "  -> "
              << (ok ? "meets the bar" : "BELOW the bar") << "\n";
  }
  if (report.xxh3_gbps > 0) {
    // Per 4 MiB op the store hashes the value three times (client before insert, daemon on
    // commit, client after receive); raw TCP hashes nothing.
    double ms_per_hash = static_cast<double>(kIssueSize) / (report.xxh3_gbps * 1e9) * 1e3;
    double ms_per_copy = static_cast<double>(kIssueSize) / (report.memcpy_gbps * 1e9) * 1e3;
    std::cout << "\nper-byte costs on this machine, one thread, warm 4 MiB buffer: XXH3-64 "
              << Fixed(report.xxh3_gbps, 1) << " GB/s (" << Fixed(ms_per_hash, 3)
              << " ms per 4 MiB; an insert+drop_select hashes 3 times = "
              << Fixed(3 * ms_per_hash, 3) << " ms), memcpy " << Fixed(report.memcpy_gbps, 1)
              << " GB/s (" << Fixed(ms_per_copy, 3) << " ms per 4 MiB)\n";
  }
  std::cout << std::flush;
}

void PrintJson(const BenchReport& report) {
  auto one = [](const BulkResult& r) {
    auto phase = [](const PhaseStats& p) {
      return nlohmann::json{
          {"p50_us", p.p50_us}, {"p99_us", p.p99_us}, {"busy_seconds", p.busy_seconds}};
    };
    return nlohmann::json{{"system", r.system},
                          {"size", r.size},
                          {"clients", r.clients},
                          {"round", r.round},
                          {"ops", r.ops},
                          {"seconds", r.seconds},
                          {"round_trip_gbps", r.RoundTripGBps()},
                          {"put_gbps", r.PutGBps()},
                          {"get_gbps", r.GetGBps()},
                          {"put", phase(r.put)},
                          {"get", phase(r.get)},
                          {"round_trip", phase(r.round_trip)},
                          {"client_cpu_seconds", r.client_cpu_seconds},
                          {"server_cpu_seconds", r.server_cpu_seconds},
                          {"errors", r.errors},
                          {"first_error", r.first_error}};
  };
  std::vector<BulkResult> best = MedianOfRounds(report.all);
  auto m = Index(best);
  nlohmann::json best_json = nlohmann::json::array();
  for (const BulkResult& r : best) {
    nlohmann::json j = one(r);
    if (r.system == "kvstore") {
      j["round_trip_vs_raw"] = Ratio(m, r, "raw-tcp", &BulkResult::RoundTripGBps);
      j["round_trip_vs_redis"] = Ratio(m, r, "redis", &BulkResult::RoundTripGBps);
      j["put_vs_raw"] = Ratio(m, r, "raw-tcp", &BulkResult::PutGBps);
      j["get_vs_raw"] = Ratio(m, r, "raw-tcp", &BulkResult::GetGBps);
      j["put_vs_redis"] = Ratio(m, r, "redis", &BulkResult::PutGBps);
      j["get_vs_redis"] = Ratio(m, r, "redis", &BulkResult::GetGBps);
    }
    best_json.push_back(std::move(j));
  }
  nlohmann::json rounds = nlohmann::json::array();
  for (const BulkResult& r : report.all) rounds.push_back(one(r));
  std::cout << nlohmann::json{{"addr", report.addr},
                              {"transport", report.transport},
                              {"seconds_per_case", report.seconds_per_case},
                              {"max_ops", report.max_ops},
                              {"rounds", report.rounds},
                              {"throughput_definition",
                               "value bytes / s (1e9); round_trip counts each value once per "
                               "direction (2 x size per op) over wall time; put/get = size / "
                               "mean phase latency x clients"},
                              {"redis_note", report.redis_note},
                              {"load_before", report.load_before},
                              {"load_after", report.load_after},
                              {"xxh3_gbps", report.xxh3_gbps},
                              {"memcpy_gbps", report.memcpy_gbps},
                              {"median", best_json},
                              {"all", rounds}}
                   .dump(2)
            << std::endl;
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  if (!(in >> a >> b >> c)) return "?";
  return a + " " + b + " " + c;
}

void MeasurePerByteCosts(size_t size, double* xxh3_gbps, double* memcpy_gbps) {
  std::vector<std::byte> a(size), b(size);
  FillPattern(a, 3);
  FillPattern(b, 4);
  constexpr int kReps = 32;
  volatile uint64_t sink = 0;
  uint64_t t0 = NowNs();
  for (int i = 0; i < kReps; ++i) sink = sink + XXH3_64bits(a.data(), a.size());
  uint64_t t1 = NowNs();
  for (int i = 0; i < kReps; ++i) {
    std::memcpy(b.data(), a.data(), size);
    a[static_cast<size_t>(i)] = b[static_cast<size_t>(i) + 1];  // keeps the copy alive
  }
  uint64_t t2 = NowNs();
  *xxh3_gbps = static_cast<double>(size) * kReps / static_cast<double>(t1 - t0);
  *memcpy_gbps = static_cast<double>(size) * kReps / static_cast<double>(t2 - t1);
}

}  // namespace kvstore::bench
