// A bare TCP (or, for "unix:PATH", Unix-socket) connection to kvstored for
// tests that send what a correct client never would: garbage, bad frames,
// half frames, forged regions.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <capnp/message.h>

#include "kvstore.capnp.h"
#include "kvstore/frame.h"
#include "kvstore/key.h"

namespace kvstore::testing {

class RawConn {
 public:
  explicit RawConn(const std::string& address);
  ~RawConn();
  bool connected() const { return fd_ >= 0; }
  // TCP: every send goes out at once (TCP_NODELAY), however small.
  void SetNoDelay();

  bool SendBytes(std::span<const std::byte> bytes);
  bool SendBytes(const std::string& s) {
    return SendBytes({reinterpret_cast<const std::byte*>(s.data()), s.size()});
  }
  // Header + control + bulk, with the header's fields as given.
  bool SendFrame(capnp::MessageBuilder& msg, std::span<const std::byte> bulk,
                 std::optional<uint64_t> bulk_len_override = std::nullopt);
  // Unix socket: the frame (no bulk) with `fd` attached (SCM_RIGHTS).
  bool SendFrameWithFd(capnp::MessageBuilder& msg, int fd);

  struct Reply {
    FrameHeader header;
    wire::Code code = wire::Code::OK;
    std::string message;
    uint64_t id = 0;
    uint64_t count = 0;
    size_t entries = 0;
    std::vector<std::byte> bulk;
  };
  // Reads one reply (and its bulk). nullopt when the server closed the connection
  // or nothing came within `timeout_ms`.
  std::optional<Reply> ReadReply(int timeout_ms = 5000);
  // True when the server closed the connection (EOF) within `timeout_ms`.
  bool ClosedByPeer(int timeout_ms = 5000);

 private:
  bool ReadExact(void* dst, size_t n, int timeout_ms);
  int fd_ = -1;
};

}  // namespace kvstore::testing
