#include "test_daemon.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace kvstore::testing {

std::string KvstoredPath() { return KVSTORED_PATH; }

uint16_t FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  uint16_t port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

std::string MakeTempDir(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  char* p = ::mkdtemp(buf.data());
  return p ? std::string(p) : std::string();
}

pid_t SpawnWithLog(std::vector<std::string> argv, const std::string& log_path) {
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) {
    // A test process that crashes takes its daemons and engines with it
    // (SIGTERM: they shut down cleanly) instead of leaving them running.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(127);
    int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

bool ProcessRunning(pid_t* pid) {
  if (*pid <= 0) return false;
  int status = 0;
  if (::waitpid(*pid, &status, WNOHANG) == *pid) {
    *pid = -1;
    return false;
  }
  return true;
}

int StopProcess(pid_t* pid, int sig, std::chrono::milliseconds timeout) {
  if (*pid <= 0) return -1;
  ::kill(*pid, sig);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (true) {
    if (::waitpid(*pid, &status, WNOHANG) == *pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(*pid, SIGKILL);
      ::waitpid(*pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  *pid = -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty()) std::filesystem::remove_all(path_, ec);
}

namespace {

bool CanConnect(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

std::unique_ptr<TestDaemon> TestDaemon::Start(const DaemonOptions& options, std::string* error) {
  // A free port can be taken by a test running in parallel before the daemon
  // binds it: try again with fresh ports when that is why it did not start.
  for (int attempt = 0;; ++attempt) {
    auto d = StartOnce(options, error);
    bool port_taken = error->find("cannot listen on") != std::string::npos ||
                      error->find("cannot serve metrics on") != std::string::npos;
    if (d != nullptr || attempt == 2 || options.port != 0 || !port_taken) {
      return d;
    }
  }
}

std::unique_ptr<TestDaemon> TestDaemon::StartOnce(const DaemonOptions& options,
                                                  std::string* error) {
  std::unique_ptr<TestDaemon> d(new TestDaemon());
  if (options.data_dir.empty()) {
    d->owned_dir_ = std::make_unique<TempDir>("kvstored-data");
    d->data_dir_ = d->owned_dir_->path();
  } else {
    d->data_dir_ = options.data_dir;
  }
  d->port_ = options.port ? options.port : FreePort();
  d->metrics_port_ = options.metrics_port ? options.metrics_port : FreePort();
  d->log_path_ = MakeTempDir("kvstored-log") + "/kvstored.log";

  std::vector<std::string> args = {KvstoredPath(),
                                   "--listen",
                                   "127.0.0.1:" + std::to_string(d->port_),
                                   "--metrics",
                                   "127.0.0.1:" + std::to_string(d->metrics_port_),
                                   "--data-dir",
                                   d->data_dir_,
                                   "--no-mlock"};
  args.insert(args.end(), options.args.begin(), options.args.end());
  pid_t pid = SpawnWithLog(std::move(args), d->log_path_);
  d->pid_ = pid;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!d->running()) {
      *error = "kvstored exited at start: " + d->Log();
      return nullptr;
    }
    // Both listeners: the metrics endpoint may open a moment after the data port.
    if (CanConnect(d->port_) && CanConnect(d->metrics_port_)) return d;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  *error = "kvstored did not accept connections within 20 s: " + d->Log();
  return nullptr;
}

TestDaemon::~TestDaemon() {
  if (pid_ > 0 && running()) StopWith(SIGTERM, std::chrono::seconds(10));
  std::error_code ec;
  std::filesystem::remove_all(std::filesystem::path(log_path_).parent_path(), ec);
}

std::string TestDaemon::address() const { return "127.0.0.1:" + std::to_string(port_); }
std::string TestDaemon::metrics_address() const {
  return "127.0.0.1:" + std::to_string(metrics_port_);
}

bool TestDaemon::running() { return ProcessRunning(&pid_); }

int TestDaemon::StopWith(int sig, std::chrono::milliseconds timeout) {
  return StopProcess(&pid_, sig, timeout);
}

std::string TestDaemon::ScrapeMetrics() const {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(metrics_port_);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return {};
  }
  std::string req = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  (void)!::write(fd, req.data(), req.size());
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  auto body = out.find("\r\n\r\n");
  return body == std::string::npos ? std::string() : out.substr(body + 4);
}

std::optional<double> TestDaemon::Metric(const std::string& name,
                                         const std::map<std::string, std::string>& labels) const {
  std::istringstream in(ScrapeMetrics());
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line.compare(0, name.size(), name) != 0) continue;
    char next = line.size() > name.size() ? line[name.size()] : '\0';
    if (next != ' ' && next != '{') continue;
    bool match = true;
    for (const auto& [k, v] : labels) {
      if (line.find(k + "=\"" + v + "\"") == std::string::npos) match = false;
    }
    if (!match) continue;
    return std::strtod(line.substr(line.rfind(' ') + 1).c_str(), nullptr);
  }
  return std::nullopt;
}

std::string TestDaemon::Log() const { return ReadFile(log_path_); }

}  // namespace kvstore::testing
