// EngineProcess: runs the real kvstore-engine binary for end-to-end tests on
// a free loopback port, waits until it answers GET /health, and stops it
// (SIGTERM, then SIGKILL) when destroyed, so no test leaks a process.
//
// Thread-compatibility: one thread drives an EngineProcess.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace kvstore::testing {

std::string KvstoreEnginePath();

class EngineProcess {
 public:
  // args: everything after the binary except --listen, which is added.
  // nullptr (reason in *error) when it does not answer /health within 30 s.
  static std::unique_ptr<EngineProcess> Start(const std::string& name,
                                              const std::vector<std::string>& args,
                                              std::string* error);
  ~EngineProcess();

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  pid_t pid() const { return pid_; }
  bool running();
  // Sends sig and waits; the exit code, 128+signal when killed, -1 if not running.
  int StopWith(int sig, std::chrono::milliseconds timeout = std::chrono::seconds(20));
  std::string Log() const;

 private:
  EngineProcess() = default;
  std::string name_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  std::string log_dir_;
};

}  // namespace kvstore::testing
