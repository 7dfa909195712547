// A real etcd for cluster tests: 127.0.0.1, free client and peer ports, its own
// data dir; stopped (SIGTERM, then SIGKILL) when destroyed. Stop() and
// Restart() keep the data dir and ports, as an operator restarting etcd would.
//
// Thread-compatibility: one thread drives an EtcdProcess.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "test_daemon.h"

namespace kvstore::testing {

class EtcdProcess {
 public:
  // nullptr with the reason in *error when etcd is not installed or does not come up.
  static std::unique_ptr<EtcdProcess> Start(std::string* error);
  ~EtcdProcess();

  std::string endpoint() const;  // "127.0.0.1:PORT"
  // etcd://127.0.0.1:PORT/NAME
  std::string Url(const std::string& name) const { return "etcd://" + endpoint() + "/" + name; }
  void Stop();
  bool Restart(std::string* error);

  // Path of the etcd binary, or "" when none is installed.
  static std::string BinaryPath();

 private:
  EtcdProcess() = default;
  bool Launch(std::string* error);
  pid_t pid_ = -1;
  uint16_t client_port_ = 0;
  uint16_t peer_port_ = 0;
  std::unique_ptr<TempDir> dir_;
};

}  // namespace kvstore::testing
