// Helpers for the small-op benchmark: timed multi-threaded loops with latency percentiles,
// and a kvstored child process on a free loopback port.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "kvstore/status.h"

namespace kvstore::bench {

struct CaseResult {
  std::string name;
  int threads = 0;
  uint64_t ops = 0;
  double seconds = 0;
  double ops_per_sec = 0;
  double p50_us = 0;
  double p99_us = 0;
  double p999_us = 0;
  uint64_t errors = 0;
  std::string first_error;
};

// Runs op(thread, iteration) on `threads` threads until `seconds` have passed, timing
// every call. `warmup` calls per thread run first and are not counted. A thread stops
// early after 100 failed calls. op must be safe to call from several threads at once.
CaseResult RunTimed(const std::string& name, int threads, double seconds, int warmup,
                    const std::function<Status(int thread, uint64_t iteration)>& op);

// Turns per-call latencies (ns) into the result's percentiles.
void Summarize(std::vector<uint64_t>* latencies_ns, CaseResult* r);

// A loopback port nobody listens on right now (racy by nature; fine for a benchmark).
uint16_t FreeLoopbackPort();

// kvstored as a child process with its own temp data dir. Stop() (or the destructor)
// sends SIGTERM, waits, and removes the dir.
class DaemonProcess {
 public:
  DaemonProcess() = default;
  ~DaemonProcess();
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  // Starts `binary` listening on a free loopback port and waits until it answers a ping.
  // `extra_args` go on its command line; `tls_ca` (with --tls-cert among them) is the CA
  // the readiness ping trusts.
  Status Start(const std::string& binary, const std::string& memory,
               const std::vector<std::string>& extra_args = {}, const std::string& tls_ca = {});
  // Returns the daemon's exit code (0 on a clean SIGTERM shutdown), or -1.
  int Stop();
  const std::string& address() const { return address_; }
  // The daemon's process id while it runs, else -1.
  pid_t pid() const { return pid_; }
  std::filesystem::path log_path() const { return dir_ / "kvstored.log"; }

 private:
  pid_t pid_ = -1;
  std::filesystem::path dir_;
  std::string address_;
};

// The kvstored this build made (KVSTORED_DEFAULT_PATH), else the one beside
// the running bench: build/tests/bench/<bench> -> build/server/kvstored.
std::string DefaultKvstored();

}  // namespace kvstore::bench
