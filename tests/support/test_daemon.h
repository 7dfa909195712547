// Starts the real kvstored for integration tests: 127.0.0.1, free ports, a temp
// data dir; stops it (SIGTERM, then SIGKILL) when destroyed.
//
// Thread-compatibility: one thread drives a TestDaemon.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kvstore::testing {

// A loopback port nobody listens on right now.
uint16_t FreePort();
// A fresh directory under /tmp, removed by the caller (or TempDir below).
std::string MakeTempDir(const std::string& prefix);

// Child processes of a test: started with stdout and stderr in a log file.
// Starts argv[0] with argv; its output goes to `log_path`. Returns the pid.
pid_t SpawnWithLog(std::vector<std::string> argv, const std::string& log_path);
// True while `*pid` runs; reaps it and sets *pid = -1 once it has exited.
bool ProcessRunning(pid_t* pid);
// Sends `sig`, waits up to `timeout` (then SIGKILL), reaps; returns the exit code
// (128 + signal when killed), -1 when there was no process. Sets *pid = -1.
int StopProcess(pid_t* pid, int sig, std::chrono::milliseconds timeout);
// The whole file, or "" when unreadable.
std::string ReadFile(const std::string& path);

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "kvstore-test") : path_(MakeTempDir(prefix)) {}
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct DaemonOptions {
  std::vector<std::string> args;  // extra flags, e.g. {"--memory", "64MiB"}
  std::string data_dir;           // empty = a temp dir owned by the TestDaemon
  uint16_t port = 0;              // 0 = a free port
  uint16_t metrics_port = 0;      // 0 = a free port
};

class TestDaemon {
 public:
  // Starts kvstored and waits until it accepts connections; nullptr (with the
  // reason in *error) when it does not come up within 20 s.
  static std::unique_ptr<TestDaemon> Start(const DaemonOptions& options, std::string* error);
  ~TestDaemon();

  std::string address() const;          // "127.0.0.1:PORT"
  std::string metrics_address() const;  // "127.0.0.1:PORT"
  const std::string& data_dir() const { return data_dir_; }
  pid_t pid() const { return pid_; }
  bool running();

  // Sends `sig` and waits for exit; returns the exit code (128+signal when killed).
  int StopWith(int sig, std::chrono::milliseconds timeout = std::chrono::seconds(20));

  // GET /metrics; empty on failure.
  std::string ScrapeMetrics() const;
  // The value of one sample, e.g. Metric("kvstore_waiters") or
  // Metric("kvstore_entries", {{"tier","host"}}); nullopt when absent.
  std::optional<double> Metric(const std::string& name,
                               const std::map<std::string, std::string>& labels = {}) const;
  // Everything the daemon wrote to stderr so far.
  std::string Log() const;

 private:
  TestDaemon() = default;
  static std::unique_ptr<TestDaemon> StartOnce(const DaemonOptions& options, std::string* error);
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  uint16_t metrics_port_ = 0;
  std::string data_dir_;
  std::string log_path_;
  std::unique_ptr<TempDir> owned_dir_;
};

// Path of the kvstored binary under test (from the build).
std::string KvstoredPath();

}  // namespace kvstore::testing
