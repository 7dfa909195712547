#include "raw_pingpong.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace kvstore::bench {
namespace {

constexpr size_t kMessage = 64;

bool WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool ReadAll(int fd, char* p, size_t n) {
  while (n > 0) {
    ssize_t r = ::recv(fd, p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

void NoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// Owns a socket descriptor.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

CaseResult RunRawPingPong(int threads, double seconds) {
  auto fail = [&](const std::string& why) {
    CaseResult r;
    r.name = "raw tcp 64B ping-pong";
    r.threads = threads;
    r.errors = 1;
    r.first_error = why + ": " + std::strerror(errno);
    return r;
  };
  Fd listener(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (listener.get() < 0 || ::bind(listener.get(), reinterpret_cast<sockaddr*>(&a), len) != 0 ||
      ::listen(listener.get(), threads) != 0 ||
      ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    return fail("raw ping-pong: cannot listen on loopback");
  }
  std::vector<Fd> clients;
  std::vector<Fd> servers;
  for (int t = 0; t < threads; ++t) {
    Fd c(::socket(AF_INET, SOCK_STREAM, 0));
    if (c.get() < 0 || ::connect(c.get(), reinterpret_cast<sockaddr*>(&a), len) != 0) {
      return fail("raw ping-pong: connect");
    }
    Fd s(::accept(listener.get(), nullptr, nullptr));
    if (s.get() < 0) return fail("raw ping-pong: accept");
    NoDelay(c.get());
    NoDelay(s.get());
    clients.push_back(std::move(c));
    servers.push_back(std::move(s));
  }
  // Echo threads run until their client shuts its side down.
  std::vector<std::thread> echo;
  for (int t = 0; t < threads; ++t) {
    echo.emplace_back([fd = servers[t].get()] {
      char buf[kMessage];
      while (ReadAll(fd, buf, kMessage) && WriteAll(fd, buf, kMessage)) {
      }
    });
  }
  CaseResult r =
      RunTimed("raw tcp 64B ping-pong", threads, seconds, 100, [&](int t, uint64_t) -> Status {
        char buf[kMessage] = {};
        int fd = clients[t].get();
        if (!WriteAll(fd, buf, kMessage) || !ReadAll(fd, buf, kMessage)) {
          return Status::Internal("loopback ping-pong failed");
        }
        return Status::Ok();
      });
  for (auto& c : clients) ::shutdown(c.get(), SHUT_WR);
  for (auto& th : echo) th.join();
  return r;
}

}  // namespace kvstore::bench
