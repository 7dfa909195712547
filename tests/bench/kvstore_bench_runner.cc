// The timed multi-client loop shared by every system of kvstore-bench.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "kvstore_bench.h"

namespace kvstore::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t kMaxErrorsPerClient = 10;

PhaseStats Stats(std::vector<uint64_t>* ns) {
  PhaseStats s;
  if (ns->empty()) return s;
  double sum = 0;
  for (uint64_t v : *ns) sum += static_cast<double>(v);
  s.busy_seconds = sum / 1e9;
  std::sort(ns->begin(), ns->end());
  auto at = [&](double q) {
    return static_cast<double>(
               (*ns)[static_cast<size_t>(q * static_cast<double>(ns->size() - 1))]) /
           1000.0;
  };
  s.p50_us = at(0.50);
  s.p99_us = at(0.99);
  return s;
}

double SelfCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

}  // namespace

double BulkResult::RoundTripGBps() const {
  return seconds > 0 ? 2.0 * static_cast<double>(size) * static_cast<double>(ops) / seconds / 1e9
                     : 0;
}

double BulkResult::PutGBps() const {
  return put.busy_seconds > 0 ? static_cast<double>(size) * static_cast<double>(ops) /
                                    (put.busy_seconds / clients) / 1e9
                              : 0;
}

double BulkResult::GetGBps() const {
  return get.busy_seconds > 0 ? static_cast<double>(size) * static_cast<double>(ops) /
                                    (get.busy_seconds / clients) / 1e9
                              : 0;
}

uint64_t NowNs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
          .count());
}

Key BulkKey(uint64_t run, uint32_t case_id, uint32_t client, uint64_t i) {
  Key k;
  std::memcpy(k.bytes.data(), &run, 8);
  std::memcpy(k.bytes.data() + 8, &case_id, 4);
  std::memcpy(k.bytes.data() + 12, &client, 4);
  std::memcpy(k.bytes.data() + 16, &i, 8);
  k.bytes[31] = std::byte{0xb7};  // never all zero
  return k;
}

void FillPattern(std::span<std::byte> value, uint64_t seed) {
  uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
  size_t i = 0;
  for (; i + 8 <= value.size(); i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(value.data() + i, &x, 8);
  }
  for (; i < value.size(); ++i) value[i] = static_cast<std::byte>(i);
}

double ProcessCpuSeconds(pid_t pid) {
  if (pid <= 0) return -1;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return -1;
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  size_t close = line.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  uint64_t utime = 0;
  uint64_t stime = 0;
  for (int f = 3; f <= 15 && rest >> field; ++f) {
    if (f == 14) utime = std::stoull(field);
    if (f == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

BulkResult FailedCase(const std::string& system, size_t size, int clients, const Status& why) {
  BulkResult r;
  r.system = system;
  r.size = size;
  r.clients = clients;
  r.errors = 1;
  r.first_error = why.ToString();
  return r;
}

BulkResult RunBulk(const std::string& system, size_t size, int clients, const RunLimits& limits,
                   pid_t server_pid, const BulkOp& op) {
  BulkResult r;
  r.system = system;
  r.size = size;
  r.clients = clients;
  std::vector<std::vector<uint64_t>> put(clients), get(clients), rt(clients);
  std::vector<uint64_t> errors(clients, 0);
  std::mutex error_mu;
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::atomic<uint64_t> claimed{0};  // ops started, for --ops
  Clock::time_point deadline;
  auto body = [&](int t) {
    uint64_t i = 0;
    for (; i < static_cast<uint64_t>(limits.warmup_ops); ++i) {
      PhaseTimes ignored;
      Status s = op(t, i, &ignored);
      if (!s.ok()) {
        std::lock_guard lock(error_mu);
        if (r.first_error.empty()) r.first_error = "warm-up: " + s.ToString();
      }
    }
    ready.fetch_add(1);
    while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
    while (Clock::now() < deadline) {
      if (limits.max_ops > 0 && claimed.fetch_add(1) >= limits.max_ops) break;
      PhaseTimes times;
      uint64_t t0 = NowNs();
      Status s = op(t, i++, &times);
      uint64_t t1 = NowNs();
      if (!s.ok()) {
        if (errors[t]++ == 0) {
          std::lock_guard lock(error_mu);
          if (r.first_error.empty()) r.first_error = s.ToString();
        }
        if (errors[t] >= kMaxErrorsPerClient) break;
        continue;
      }
      put[t].push_back(times.put_ns);
      get[t].push_back(times.get_ns);
      rt[t].push_back(t1 - t0);
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < clients; ++t) pool.emplace_back(body, t);
  while (ready.load() < clients) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  double cpu0 = SelfCpuSeconds();
  double server0 = ProcessCpuSeconds(server_pid);
  auto start = Clock::now();
  deadline = start + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(limits.seconds));
  go.store(true, std::memory_order_release);  // publishes deadline
  for (auto& th : pool) th.join();
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  r.client_cpu_seconds = SelfCpuSeconds() - cpu0;
  double server1 = ProcessCpuSeconds(server_pid);
  if (server0 >= 0 && server1 >= 0) r.server_cpu_seconds = server1 - server0;
  std::vector<uint64_t> all_put, all_get, all_rt;
  for (int t = 0; t < clients; ++t) {
    all_put.insert(all_put.end(), put[t].begin(), put[t].end());
    all_get.insert(all_get.end(), get[t].begin(), get[t].end());
    all_rt.insert(all_rt.end(), rt[t].begin(), rt[t].end());
    r.errors += errors[t];
  }
  r.ops = all_rt.size();
  r.put = Stats(&all_put);
  r.get = Stats(&all_get);
  r.round_trip = Stats(&all_rt);
  return r;
}

}  // namespace kvstore::bench
