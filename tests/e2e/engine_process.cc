#include "engine_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "kvstore/engine/http_client.h"
#include "test_daemon.h"

namespace kvstore::testing {

std::string KvstoreEnginePath() { return KVSTORE_ENGINE_PATH; }

std::unique_ptr<EngineProcess> EngineProcess::Start(const std::string& name,
                                                    const std::vector<std::string>& args,
                                                    std::string* error) {
  std::unique_ptr<EngineProcess> p(new EngineProcess());
  p->name_ = name;
  p->port_ = FreePort();
  p->log_dir_ = MakeTempDir("kvstore-engine-log");
  std::vector<std::string> argv_s = {KvstoreEnginePath(), "--listen",
                                     "127.0.0.1:" + std::to_string(p->port_)};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  const std::string log = p->log_dir_ + "/engine.log";
  pid_t pid = SpawnWithLog(std::move(argv_s), log);
  p->pid_ = pid;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!p->running()) {
      *error = name + " exited at start: " + p->Log();
      return nullptr;
    }
    auto r = engine::HttpGet(p->url(), "/health", std::chrono::seconds(2));
    if (r.ok() && r->status == 200) return p;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  *error = name + " did not answer /health within 30 s: " + p->Log();
  return nullptr;
}

EngineProcess::~EngineProcess() {
  if (pid_ > 0 && running()) StopWith(SIGTERM, std::chrono::seconds(10));
  std::error_code ec;
  std::filesystem::remove_all(log_dir_, ec);
}

bool EngineProcess::running() { return ProcessRunning(&pid_); }

int EngineProcess::StopWith(int sig, std::chrono::milliseconds timeout) {
  return StopProcess(&pid_, sig, timeout);
}

std::string EngineProcess::Log() const { return ReadFile(log_dir_ + "/engine.log"); }

}  // namespace kvstore::testing
