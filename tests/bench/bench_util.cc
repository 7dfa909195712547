#include "bench_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "kvstore/client.h"

extern char** environ;

namespace kvstore::bench {

using Clock = std::chrono::steady_clock;

void Summarize(std::vector<uint64_t>* lat, CaseResult* r) {
  if (lat->empty()) return;
  std::sort(lat->begin(), lat->end());
  auto at = [&](double q) {
    size_t i = static_cast<size_t>(q * static_cast<double>(lat->size() - 1));
    return static_cast<double>((*lat)[i]) / 1000.0;
  };
  r->p50_us = at(0.50);
  r->p99_us = at(0.99);
  r->p999_us = at(0.999);
}

CaseResult RunTimed(const std::string& name, int threads, double seconds, int warmup,
                    const std::function<Status(int, uint64_t)>& op) {
  CaseResult r;
  r.name = name;
  r.threads = threads;
  std::vector<std::vector<uint64_t>> lat(threads);
  std::vector<uint64_t> errors(threads, 0);
  std::mutex error_mu;
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  Clock::time_point start;
  Clock::time_point deadline;
  auto body = [&](int t) {
    uint64_t i = 0;
    for (; i < static_cast<uint64_t>(warmup); ++i) (void)op(t, i);
    ready.fetch_add(1);
    while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
    lat[t].reserve(1 << 16);
    while (true) {
      auto t0 = Clock::now();
      if (t0 >= deadline) break;
      Status s = op(t, i++);
      auto t1 = Clock::now();
      if (!s.ok()) {
        if (errors[t]++ == 0) {
          std::lock_guard lock(error_mu);
          if (r.first_error.empty()) r.first_error = s.ToString();
        }
        if (errors[t] >= 100) break;
        continue;
      }
      lat[t].push_back(static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()));
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(body, t);
  while (ready.load() < threads) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  start = Clock::now();
  deadline =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  go.store(true, std::memory_order_release);  // publishes start and deadline
  for (auto& th : pool) th.join();
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<uint64_t> all;
  for (int t = 0; t < threads; ++t) {
    all.insert(all.end(), lat[t].begin(), lat[t].end());
    r.errors += errors[t];
  }
  r.ops = all.size();
  r.ops_per_sec = r.seconds > 0 ? static_cast<double>(r.ops) / r.seconds : 0;
  Summarize(&all, &r);
  return r;
}

uint16_t FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  uint16_t port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

DaemonProcess::~DaemonProcess() { Stop(); }

Status DaemonProcess::Start(const std::string& binary, const std::string& memory,
                            const std::vector<std::string>& extra_args, const std::string& tls_ca) {
  if (access(binary.c_str(), X_OK) != 0) {
    return Status::InvalidArgument("no kvstored executable at " + binary +
                                   " (build it, or pass --kvstored PATH or --addr HOST:PORT)");
  }
  char tmpl[] = "/tmp/kvstore-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return Status::Internal("mkdtemp failed");
  dir_ = tmpl;
  std::filesystem::create_directories(dir_ / "data");
  uint16_t port = FreeLoopbackPort();
  uint16_t metrics = FreeLoopbackPort();
  if (port == 0 || metrics == 0) return Status::Internal("no free loopback port");
  address_ = "127.0.0.1:" + std::to_string(port);
  std::vector<std::string> args = {binary,
                                   "--listen",
                                   address_,
                                   "--metrics",
                                   "127.0.0.1:" + std::to_string(metrics),
                                   "--data-dir",
                                   (dir_ / "data").string(),
                                   "--memory",
                                   memory,
                                   "--log-level",
                                   "warn"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  std::string log = log_path().string();
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  int rc = posix_spawn(&pid_, binary.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    pid_ = -1;
    return Status::Internal("cannot start " + binary + ": " + std::strerror(rc));
  }
  ClientOptions opts;
  opts.address = address_;
  opts.connect_timeout = std::chrono::milliseconds(500);
  opts.tls_ca = tls_ca;
  auto deadline = Clock::now() + std::chrono::seconds(15);
  while (Clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      std::ifstream in(log_path());
      std::stringstream ss;
      ss << in.rdbuf();
      return Status::Unavailable("kvstored exited at start-up; its log: " + ss.str());
    }
    auto c = Client::Connect(opts);
    if (c.ok() && (*c)->Ping().ok()) return Status::Ok();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Status::Timeout("kvstored did not answer at " + address_ + " within 15 s; log at " +
                         log_path().string());
}

int DaemonProcess::Stop() {
  int code = -1;
  bool died_early = false;
  if (pid_ > 0) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      died_early = true;
      code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      pid_ = -1;
    }
  }
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    for (int i = 0; i < 200 && pid_ > 0; ++i) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        pid_ = -1;
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
      }
    }
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  if (!dir_.empty() && (died_early || code != 0)) {
    // Whatever went wrong is in its log, which is about to go with the temp dir.
    std::ifstream in(log_path());
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    size_t from = lines.size() > 10 ? lines.size() - 10 : 0;
    std::fprintf(stderr, "kvstored %s with %d; the end of its log:\n",
                 died_early ? "died during the run, exit code" : "exited on SIGTERM", code);
    for (size_t i = from; i < lines.size(); ++i) std::fprintf(stderr, "  %s\n", lines[i].c_str());
  }
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    dir_.clear();
  }
  return code;
}

std::string DefaultKvstored() {
#ifdef KVSTORED_DEFAULT_PATH
  if (access(KVSTORED_DEFAULT_PATH, X_OK) == 0) return KVSTORED_DEFAULT_PATH;
#endif
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return (self.parent_path() / ".." / ".." / "server" / "kvstored").lexically_normal().string();
}

}  // namespace kvstore::bench
