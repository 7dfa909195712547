// Loopback socket plumbing of the raw TCP baselines (ping-pong and bulk): an
// owning descriptor, full reads and writes, and N connected socket pairs.
//
// Thread-compatibility: each descriptor is used by one thread at a time.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace kvstore::bench {

// Owns a socket descriptor.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd();
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Sends or receives exactly n bytes; false when the peer is gone.
bool WriteAll(int fd, const void* data, size_t n, int flags = 0);
bool ReadAll(int fd, void* data, size_t n);

// `count` connected loopback TCP pairs with TCP_NODELAY: clients[i] talks to peers[i].
// Empty on success, else what failed (with strerror).
std::string ConnectLoopbackPairs(int count, std::vector<Fd>* clients, std::vector<Fd>* peers);

}  // namespace kvstore::bench
