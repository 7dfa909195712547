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
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
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

bool EngineProcess::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

int EngineProcess::StopWith(int sig, std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, sig);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  for (;;) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::string EngineProcess::Log() const {
  std::ifstream in(log_dir_ + "/engine.log");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace kvstore::testing
