#include "loopback.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kvstore::bench {

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

bool WriteAll(int fd, const void* data, size_t n, int flags) {
  auto* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL | flags);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool ReadAll(int fd, void* data, size_t n) {
  auto* p = static_cast<char*>(data);
  while (n > 0) {
    ssize_t r = ::recv(fd, p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

namespace {

void NoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

std::string Error(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

}  // namespace

std::string ConnectLoopbackPairs(int count, std::vector<Fd>* clients, std::vector<Fd>* peers) {
  Fd listener(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (listener.get() < 0 || ::bind(listener.get(), reinterpret_cast<sockaddr*>(&a), len) != 0 ||
      ::listen(listener.get(), count) != 0 ||
      ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    return Error("cannot listen on loopback");
  }
  for (int t = 0; t < count; ++t) {
    Fd c(::socket(AF_INET, SOCK_STREAM, 0));
    if (c.get() < 0 || ::connect(c.get(), reinterpret_cast<sockaddr*>(&a), len) != 0) {
      return Error("connect");
    }
    Fd s(::accept(listener.get(), nullptr, nullptr));
    if (s.get() < 0) return Error("accept");
    NoDelay(c.get());
    NoDelay(s.get());
    clients->push_back(std::move(c));
    peers->push_back(std::move(s));
  }
  return {};
}

}  // namespace kvstore::bench
