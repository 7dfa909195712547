// kvstore-bench: bulk-value throughput and latency of insert + drop_select against
// kvstored, beside a raw loopback TCP stream and Redis SET + GETDEL of the same payloads.
//
// Every system runs the same operation shape, one value per op and two transfers per op:
//   put  client -> server, `size` value bytes, then a small reply
//        (store: insert; raw: send + 1-byte ack; Redis: SET)
//   get  server -> client, `size` value bytes after a small request
//        (store: drop_select into a caller buffer; raw: 9-byte request + bytes; Redis: GETDEL)
// Throughput counts value bytes only, each value once per direction:
//   round-trip GB/s = 2 * size * ops / wall seconds (both directions together)
//   put GB/s = size * ops / (time spent in put / clients); get GB/s likewise.
//
// Thread-safety: a BulkOp is called from `clients` threads at once, thread t only with t.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "kvstore/key.h"
#include "kvstore/status.h"

namespace kvstore::bench {

// Latency of one phase over all measured ops, in microseconds.
struct PhaseStats {
  double p50_us = 0;
  double p99_us = 0;
  double busy_seconds = 0;  // sum over ops
};

struct BulkResult {
  std::string system;  // "raw-tcp", "kvstore", "redis"
  size_t size = 0;
  int clients = 0;
  int round = 0;
  uint64_t ops = 0;
  double seconds = 0;
  PhaseStats put;
  PhaseStats get;
  PhaseStats round_trip;
  double client_cpu_seconds = 0;   // this process during the case (raw: both ends)
  double server_cpu_seconds = -1;  // the daemon or redis-server; -1 = unknown
  uint64_t errors = 0;
  std::string first_error;
  std::string note;  // e.g. why a system was skipped

  double RoundTripGBps() const;
  double PutGBps() const;
  double GetGBps() const;
  bool Ran() const { return ops > 0; }
};

// Per-op phase times the op fills in; the runner times the whole op itself.
struct PhaseTimes {
  uint64_t put_ns = 0;
  uint64_t get_ns = 0;
};

// One op of thread `thread`, iteration `i` (unique per thread). Returns an error on failure.
using BulkOp = std::function<Status(int thread, uint64_t i, PhaseTimes* times)>;

struct RunLimits {
  double seconds = 2;    // measured time per case
  uint64_t max_ops = 0;  // per case over all clients; 0 = no bound
  int warmup_ops = 2;    // per client, not counted
};

// Runs op on `clients` threads until the limits say stop. A thread stops after 10 errors.
// `server_pid` (> 0) has its CPU time sampled around the measured window.
// A case that could not start (a connection failed): no ops, one error saying why.
BulkResult FailedCase(const std::string& system, size_t size, int clients, const Status& why);

BulkResult RunBulk(const std::string& system, size_t size, int clients, const RunLimits& limits,
                   pid_t server_pid, const BulkOp& op);

// Nanoseconds on the steady clock, for PhaseTimes.
uint64_t NowNs();

// Key unique to this run, case, client and op, so reruns against one daemon never meet.
Key BulkKey(uint64_t run, uint32_t case_id, uint32_t client, uint64_t i);

// Fills `value` with a pattern that depends on `seed`, touching every page.
void FillPattern(std::span<std::byte> value, uint64_t seed);

// The raw loopback TCP baseline (kvstore_bench_raw.cc).
BulkResult RunRawTcpBulk(size_t size, int clients, const RunLimits& limits);

// Redis baseline (kvstore_bench_redis.cc): a redis-server child on a free loopback port.
class RedisProcess {
 public:
  RedisProcess() = default;
  ~RedisProcess();
  RedisProcess(const RedisProcess&) = delete;
  RedisProcess& operator=(const RedisProcess&) = delete;

  // Starts `binary` with no persistence and waits until it answers PING.
  Status Start(const std::string& binary);
  void Stop();
  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  uint16_t port_ = 0;
};

// Redis SET + GETDEL of the same payloads over RESP on one socket per client.
BulkResult RunRedisBulk(uint16_t port, pid_t server_pid, size_t size, int clients,
                        const RunLimits& limits, uint64_t run, uint32_t case_id);

// The store workload (kvstore_bench_store.cc): one kvstore::Client per client thread,
// its buffers registered once, over `transport` (ClientOptions::transport).
// `tls_ca`: speak TLS to the daemon, trusting this CA (empty: plaintext).
BulkResult RunStoreBulk(const std::string& addr, const std::string& transport, pid_t server_pid,
                        size_t size, int clients, const RunLimits& limits, uint64_t run,
                        uint32_t case_id, const std::string& tls_ca = {});

// CPU seconds (user + system) a process has used so far; -1 when unreadable.
double ProcessCpuSeconds(pid_t pid);

// Report (kvstore_bench_report.cc).
struct BenchReport {
  std::string addr;
  std::string transport = "tcp";
  double seconds_per_case = 0;
  uint64_t max_ops = 0;
  int rounds = 0;
  std::string redis_note;  // why Redis did not run, if it did not
  // /proc/loadavg before and after: a busy machine moves every figure, baselines included.
  std::string load_before;
  std::string load_after;
  std::vector<BulkResult> all;  // every case of every round
  // Single-thread costs of the per-byte work a store op adds, for the breakdown.
  double xxh3_gbps = 0;
  double memcpy_gbps = 0;
};

// The median round (by round-trip GB/s) of each system, size and client count;
// errors summed over its rounds.
std::vector<BulkResult> MedianOfRounds(const std::vector<BulkResult>& all);

// A case's round-trip GB/s over its rounds, and its ratio to a baseline taken
// round by round: median, min and max of each (0 when absent).
struct RoundSpread {
  double gbps_median = 0, gbps_min = 0, gbps_max = 0;
  double ratio_median = 0, ratio_min = 0, ratio_max = 0;
};
RoundSpread SpreadOf(const std::vector<BulkResult>& all, const BulkResult& ours,
                     const std::string& baseline);
void PrintTable(const BenchReport& report);
void PrintJson(const BenchReport& report);
// The first three fields of /proc/loadavg, or "?".
std::string LoadAverage();
// Measures XXH3-64 and memcpy throughput on a warm buffer of `size` bytes.
void MeasurePerByteCosts(size_t size, double* xxh3_gbps, double* memcpy_gbps);

}  // namespace kvstore::bench
