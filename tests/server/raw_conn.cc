#include "raw_conn.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include <capnp/serialize.h>

#include "kvstore/transport/transport.h"
#include "kvstore/units.h"
#include "kvstore/wire_convert.h"

namespace kvstore::testing {

RawConn::RawConn(const std::string& address) {
  if (address.rfind("unix:", 0) == 0) {
    std::string path = address.substr(5);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof(a.sun_path)) {
      ::close(fd);
      return;
    }
    std::memcpy(a.sun_path, path.data(), path.size());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      ::close(fd);
      return;
    }
    fd_ = fd;
    return;
  }
  std::string host;
  uint16_t port = 0;
  if (!SplitHostPort(address, &host, &port).ok()) return;
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, host.c_str(), &a.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return;
  }
  fd_ = fd;
}

RawConn::~RawConn() {
  if (fd_ >= 0) ::close(fd_);
}

void RawConn::SetNoDelay() {
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

bool RawConn::SendBytes(std::span<const std::byte> bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

bool RawConn::SendFrame(capnp::MessageBuilder& msg, std::span<const std::byte> bulk,
                        std::optional<uint64_t> bulk_len_override) {
  OutFrame f = EncodeFrame(msg, bulk_len_override.value_or(bulk.size()));
  return SendBytes(f.header) && SendBytes(f.control_bytes()) && SendBytes(bulk);
}

bool RawConn::SendFrameWithFd(capnp::MessageBuilder& msg, int fd) {
  OutFrame f = EncodeFrame(msg, 0);
  auto control = f.control_bytes();
  iovec iov[2] = {{f.header.data(), f.header.size()},
                  {const_cast<std::byte*>(control.data()), control.size()}};
  ssize_t n = transport::SendWithFd(fd_, iov, 2, fd);
  return n == static_cast<ssize_t>(f.header.size() + control.size());
}

bool RawConn::ReadExact(void* dst, size_t n, int timeout_ms) {
  auto* p = static_cast<char*>(dst);
  size_t got = 0;
  while (got < n) {
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, timeout_ms) <= 0) return false;
    ssize_t r = ::recv(fd_, p + got, n - got, 0);
    if (r <= 0) return false;
    got += static_cast<size_t>(r);
  }
  return true;
}

std::optional<RawConn::Reply> RawConn::ReadReply(int timeout_ms) {
  std::byte raw[kFrameHeaderSize];
  if (!ReadExact(raw, sizeof(raw), timeout_ms)) return std::nullopt;
  auto h = FrameHeader::Decode(raw, UINT64_MAX);
  if (!h.ok()) return std::nullopt;
  Reply r;
  r.header = *h;
  auto words = kj::heapArray<capnp::word>(h->control_len / 8);
  if (!ReadExact(words.begin(), h->control_len, timeout_ms)) return std::nullopt;
  capnp::FlatArrayMessageReader reader(words.asPtr());
  auto resp = reader.getRoot<wire::Response>();
  r.code = resp.getCode();
  r.message = resp.getMessage().cStr();
  r.id = resp.getId();
  if (resp.isCount()) r.count = resp.getCount();
  if (resp.isEntries()) r.entries = resp.getEntries().size();
  r.bulk.resize(h->bulk_len);
  if (h->bulk_len > 0 && !ReadExact(r.bulk.data(), r.bulk.size(), timeout_ms)) return std::nullopt;
  return r;
}

bool RawConn::ClosedByPeer(int timeout_ms) {
  auto deadline = timeout_ms;
  char buf[4096];
  while (true) {
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, deadline) <= 0) return false;
    ssize_t r = ::recv(fd_, buf, sizeof(buf), 0);
    if (r <= 0) return true;  // EOF or reset
  }
}

}  // namespace kvstore::testing
