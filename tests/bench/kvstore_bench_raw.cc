// The raw loopback TCP baseline of kvstore-bench: per client, one connected socket pair in
// this process and a peer thread that plays the server with no store logic at all.
//   put: 9-byte header + `size` bytes, peer reads them into its buffer and answers 1 byte;
//   get: 9-byte header, peer writes `size` bytes from its buffer.
// The same two transfers per op as insert + drop_select, so the ratio compares like with like.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>

#include "kvstore_bench.h"

namespace kvstore::bench {
namespace {

constexpr char kPut = 'P';
constexpr char kGet = 'G';
constexpr size_t kHeader = 9;  // op byte + 64-bit length

bool WriteAll(int fd, const void* data, size_t n, int flags = 0) {
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

void NoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// Serves put/get on `fd` until the client shuts its side down.
void PeerLoop(int fd, size_t size) {
  std::vector<std::byte> buf(size);
  FillPattern(buf, 7);
  char header[kHeader];
  while (ReadAll(fd, header, kHeader)) {
    uint64_t len = 0;
    std::memcpy(&len, header + 1, 8);
    if (len > size) return;
    if (header[0] == kPut) {
      char ack = 'k';
      if (!ReadAll(fd, buf.data(), len) || !WriteAll(fd, &ack, 1)) return;
    } else if (header[0] == kGet) {
      if (!WriteAll(fd, buf.data(), len)) return;
    } else {
      return;
    }
  }
}

}  // namespace

BulkResult RunRawTcpBulk(size_t size, int clients, const RunLimits& limits) {
  auto fail = [&](const std::string& why) {
    BulkResult r;
    r.system = "raw-tcp";
    r.size = size;
    r.clients = clients;
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
      ::listen(listener.get(), clients) != 0 ||
      ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    return fail("raw tcp: cannot listen on loopback");
  }
  std::vector<Fd> ends;
  std::vector<Fd> peers;
  for (int t = 0; t < clients; ++t) {
    Fd c(::socket(AF_INET, SOCK_STREAM, 0));
    if (c.get() < 0 || ::connect(c.get(), reinterpret_cast<sockaddr*>(&a), len) != 0) {
      return fail("raw tcp: connect");
    }
    Fd s(::accept(listener.get(), nullptr, nullptr));
    if (s.get() < 0) return fail("raw tcp: accept");
    NoDelay(c.get());
    NoDelay(s.get());
    ends.push_back(std::move(c));
    peers.push_back(std::move(s));
  }
  std::vector<std::thread> peer_threads;
  for (int t = 0; t < clients; ++t) peer_threads.emplace_back(PeerLoop, peers[t].get(), size);

  // Per-client source and destination buffers, touched before the clock starts.
  std::vector<std::vector<std::byte>> src(clients), dst(clients);
  for (int t = 0; t < clients; ++t) {
    src[t].resize(size);
    dst[t].resize(size);
    FillPattern(src[t], static_cast<uint64_t>(t) + 1);
    FillPattern(dst[t], 0);
  }
  BulkResult r = RunBulk(
      "raw-tcp", size, clients, limits, -1, [&](int t, uint64_t, PhaseTimes* times) -> Status {
        int fd = ends[t].get();
        char header[kHeader];
        uint64_t n = size;
        std::memcpy(header + 1, &n, 8);
        uint64_t t0 = NowNs();
        header[0] = kPut;
        char ack = 0;
        if (!WriteAll(fd, header, kHeader, MSG_MORE) || !WriteAll(fd, src[t].data(), size) ||
            !ReadAll(fd, &ack, 1)) {
          return Status::Internal("raw tcp put failed");
        }
        uint64_t t1 = NowNs();
        header[0] = kGet;
        if (!WriteAll(fd, header, kHeader) || !ReadAll(fd, dst[t].data(), size)) {
          return Status::Internal("raw tcp get failed");
        }
        uint64_t t2 = NowNs();
        times->put_ns = t1 - t0;
        times->get_ns = t2 - t1;
        return Status::Ok();
      });
  for (auto& e : ends) ::shutdown(e.get(), SHUT_WR);
  for (auto& th : peer_threads) th.join();
  return r;
}

}  // namespace kvstore::bench
