// The Redis baseline of kvstore-bench: a redis-server child with no persistence, and a
// minimal RESP client (SET, GETDEL, PING) that reads bulk replies straight into the
// caller's buffer, so Redis pays no client-side copy we would not pay either.
// GETDEL (Redis >= 6.2) is the closest Redis has to drop_select: read and remove.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "bench_util.h"
#include "kvstore_bench.h"

extern char** environ;

namespace kvstore::bench {
namespace {

using Clock = std::chrono::steady_clock;

// One RESP connection. Not thread-safe: one client thread each.
class RespConn {
 public:
  ~RespConn() {
    if (fd_ >= 0) ::close(fd_);
  }

  Status Connect(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      return Status::Unavailable(std::string("redis: connect: ") + std::strerror(errno));
    }
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return Status::Ok();
  }

  Status Ping() {
    static constexpr char kPing[] = "*1\r\n$4\r\nPING\r\n";
    if (!Write({{const_cast<char*>(kPing), sizeof(kPing) - 1}})) return Io("PING");
    std::string line;
    if (!ReadLine(&line)) return Io("PING reply");
    return line == "+PONG" ? Status::Ok() : Status::Internal("redis: PING answered " + line);
  }

  Status Set(const Key& key, std::span<const std::byte> value) {
    std::string head = "*3\r\n$3\r\nSET\r\n$" + std::to_string(Key::kSize) + "\r\n";
    std::string mid = "\r\n$" + std::to_string(value.size()) + "\r\n";
    static constexpr char kEnd[] = "\r\n";
    if (!Write({{head.data(), head.size()},
                {const_cast<std::byte*>(key.bytes.data()), Key::kSize},
                {mid.data(), mid.size()},
                {const_cast<std::byte*>(value.data()), value.size()},
                {const_cast<char*>(kEnd), 2}})) {
      return Io("SET");
    }
    std::string line;
    if (!ReadLine(&line)) return Io("SET reply");
    return line == "+OK" ? Status::Ok() : Status::Internal("redis: SET answered " + line);
  }

  Status GetDel(const Key& key, std::span<std::byte> dst) {
    std::string head = "*2\r\n$6\r\nGETDEL\r\n$" + std::to_string(Key::kSize) + "\r\n";
    static constexpr char kEnd[] = "\r\n";
    if (!Write({{head.data(), head.size()},
                {const_cast<std::byte*>(key.bytes.data()), Key::kSize},
                {const_cast<char*>(kEnd), 2}})) {
      return Io("GETDEL");
    }
    std::string line;
    if (!ReadLine(&line)) return Io("GETDEL reply");
    if (line.empty() || line[0] != '$') return Status::Internal("redis: GETDEL answered " + line);
    long long n = std::stoll(line.substr(1));
    if (n < 0) return Status::NotFound("redis: GETDEL found no value");
    if (static_cast<size_t>(n) != dst.size()) {
      return Status::Internal("redis: GETDEL returned " + std::to_string(n) + " bytes");
    }
    char crlf[2];
    if (!ReadExact(dst.data(), dst.size()) || !ReadExact(crlf, 2)) return Io("GETDEL value");
    return Status::Ok();
  }

 private:
  static Status Io(const char* what) {
    return Status::Unavailable(std::string("redis: ") + what + ": " + std::strerror(errno));
  }

  bool Write(std::initializer_list<iovec> parts) {
    std::vector<iovec> iov(parts);
    size_t i = 0;
    while (i < iov.size()) {
      msghdr m{};
      m.msg_iov = iov.data() + i;
      m.msg_iovlen = iov.size() - i;
      ssize_t w = ::sendmsg(fd_, &m, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      auto left = static_cast<size_t>(w);
      while (i < iov.size() && left >= iov[i].iov_len) left -= iov[i++].iov_len;
      if (i < iov.size()) {
        iov[i].iov_base = static_cast<char*>(iov[i].iov_base) + left;
        iov[i].iov_len -= left;
      }
    }
    return true;
  }

  // Reads up to "\r\n"; small replies and bulk headers only, so byte-wise buffering is enough.
  bool ReadLine(std::string* line) {
    line->clear();
    while (true) {
      if (pos_ == len_) {
        ssize_t r = ::recv(fd_, buf_, sizeof(buf_), 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        pos_ = 0;
        len_ = static_cast<size_t>(r);
      }
      char c = buf_[pos_++];
      if (c == '\n' && !line->empty() && line->back() == '\r') {
        line->pop_back();
        return true;
      }
      line->push_back(c);
    }
  }

  // Drains what ReadLine buffered, then reads straight into `out`.
  bool ReadExact(void* out, size_t n) {
    auto* p = static_cast<char*>(out);
    size_t buffered = std::min(n, len_ - pos_);
    std::memcpy(p, buf_ + pos_, buffered);
    pos_ += buffered;
    p += buffered;
    n -= buffered;
    while (n > 0) {
      ssize_t r = ::recv(fd_, p, n, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      p += r;
      n -= static_cast<size_t>(r);
    }
    return true;
  }

  int fd_ = -1;
  // Small read buffer for reply lines; kept small so bulk bytes mostly bypass it.
  char buf_[64];
  size_t pos_ = 0;
  size_t len_ = 0;
};

}  // namespace

RedisProcess::~RedisProcess() { Stop(); }

Status RedisProcess::Start(const std::string& binary) {
  port_ = FreeLoopbackPort();
  if (port_ == 0) return Status::Internal("redis: no free loopback port");
  std::vector<std::string> args = {binary,
                                   "--port",
                                   std::to_string(port_),
                                   "--bind",
                                   "127.0.0.1",
                                   "--save",
                                   "",
                                   "--appendonly",
                                   "no",
                                   "--daemonize",
                                   "no",
                                   "--protected-mode",
                                   "no",
                                   "--loglevel",
                                   "warning"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  int rc = posix_spawn(&pid_, binary.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    pid_ = -1;
    return Status::Unavailable("cannot start " + binary + ": " + std::strerror(rc));
  }
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < deadline) {
    if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return Status::Unavailable("redis-server exited at start-up");
    }
    RespConn c;
    if (c.Connect(port_).ok() && c.Ping().ok()) return Status::Ok();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Status::Timeout("redis-server did not answer PING within 10 s");
}

void RedisProcess::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  for (int i = 0; i < 200; ++i) {
    if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

BulkResult RunRedisBulk(uint16_t port, pid_t server_pid, size_t size, int clients,
                        const RunLimits& limits, uint64_t run, uint32_t case_id) {
  std::vector<std::unique_ptr<RespConn>> conns;
  std::vector<std::vector<std::byte>> src(clients), dst(clients);
  for (int t = 0; t < clients; ++t) {
    auto c = std::make_unique<RespConn>();
    if (Status s = c->Connect(port); !s.ok()) return FailedCase("redis", size, clients, s);
    conns.push_back(std::move(c));
    src[t].resize(size);
    dst[t].resize(size);
    FillPattern(src[t], static_cast<uint64_t>(t) + 1);
    FillPattern(dst[t], 0);
  }
  return RunBulk("redis", size, clients, limits, server_pid,
                 [&](int t, uint64_t i, PhaseTimes* times) -> Status {
                   Key k = BulkKey(run, case_id, static_cast<uint32_t>(t), i);
                   uint64_t t0 = NowNs();
                   KVSTORE_RETURN_IF_ERROR(conns[t]->Set(k, src[t]));
                   uint64_t t1 = NowNs();
                   KVSTORE_RETURN_IF_ERROR(conns[t]->GetDel(k, dst[t]));
                   times->put_ns = t1 - t0;
                   times->get_ns = NowNs() - t1;
                   return Status::Ok();
                 });
}

}  // namespace kvstore::bench
