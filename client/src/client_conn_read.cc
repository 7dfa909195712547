// The receiving side of a client connection: replies read through the
// connection's buffer (one recv for a small reply), values past it straight
// into the caller's memory.
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include <openssl/ssl.h>

#include <xxhash.h>

#include "client_conn.h"
#include "kvstore/wire_convert.h"
#include "no_sigpipe.h"

namespace kvstore::internal {

Status ClientConn::ReadExact(void* dst, size_t n, Clock::time_point deadline, const char* what) {
  auto* p = static_cast<char*>(dst);
  std::optional<NoSigpipe> no_sigpipe;  // a read may answer the peer (an alert, a key update)
  if (ssl_) no_sigpipe.emplace();
  while (n > 0 && ssl_) {
    KVSTORE_RETURN_IF_ERROR(SetTimeout(SO_RCVTIMEO, deadline, what));
    int r = SSL_read(ssl_.get(), p, static_cast<int>(std::min<size_t>(n, 1 << 30)));
    if (r <= 0) return TlsFail(what, r);
    p += r;
    n -= static_cast<size_t>(r);
  }
  while (n > 0) {
    KVSTORE_RETURN_IF_ERROR(SetTimeout(SO_RCVTIMEO, deadline, what));
    ssize_t r = ::recv(fd_, p, n, MSG_WAITALL);
    if (r < 0) {
      if (errno == EINTR) continue;
      if ((errno == EAGAIN || errno == EWOULDBLOCK) && RetryBefore(SO_RCVTIMEO, deadline)) {
        continue;
      }
      return Fail(what, errno);
    }
    if (r == 0) return Fail(what, 0);
    p += r;
    n -= static_cast<size_t>(r);
  }
  return Status::Ok();
}

Status ClientConn::ReadSome(Clock::time_point deadline, const char* what) {
  if (!rbuf_) rbuf_ = std::make_unique<std::byte[]>(kReadBuffer);
  if (rbuf_begin_ > 0) {  // keep what is left of a frame at the front
    std::memmove(rbuf_.get(), rbuf_.get() + rbuf_begin_, buffered());
    rbuf_end_ -= rbuf_begin_;
    rbuf_begin_ = 0;
  }
  std::byte* at = rbuf_.get() + rbuf_end_;
  const size_t room = kReadBuffer - rbuf_end_;
  for (;;) {
    KVSTORE_RETURN_IF_ERROR(SetTimeout(SO_RCVTIMEO, deadline, what));
    if (ssl_) {
      NoSigpipe no_sigpipe;
      int r = SSL_read(ssl_.get(), at, static_cast<int>(room));
      if (r <= 0) return TlsFail(what, r);
      rbuf_end_ += static_cast<size_t>(r);
      return Status::Ok();
    }
    ssize_t r = ::recv(fd_, at, room, 0);
    if (r > 0) {
      rbuf_end_ += static_cast<size_t>(r);
      return Status::Ok();
    }
    if (r == 0) return Fail(what, 0);
    if (errno == EINTR) continue;
    if ((errno == EAGAIN || errno == EWOULDBLOCK) && RetryBefore(SO_RCVTIMEO, deadline)) continue;
    return Fail(what, errno);
  }
}

Status ClientConn::Fill(size_t n, Clock::time_point deadline, const char* what) {
  while (buffered() < n) KVSTORE_RETURN_IF_ERROR(ReadSome(deadline, what));
  return Status::Ok();
}

size_t ClientConn::TakeBuffered(std::span<std::byte> dst) {
  const size_t n = std::min(dst.size(), buffered());
  if (n > 0) {
    std::memcpy(dst.data(), rbuf_.get() + rbuf_begin_, n);
    rbuf_begin_ += n;
  }
  return n;
}

Result<InFrame> ClientConn::Receive(Clock::time_point deadline) {
  KVSTORE_RETURN_IF_ERROR(Fill(kFrameHeaderSize, deadline, "receive"));
  auto header = FrameHeader::Decode(rbuf_.get() + rbuf_begin_, UINT64_MAX);
  if (!header.ok()) {
    (void)Fail("receive", EPROTO);
    return Status::Internal("kvstored sent a malformed frame: " + header.status().message());
  }
  rbuf_begin_ += kFrameHeaderSize;
  InFrame in;
  in.header = *header;
  in.words = kj::heapArray<capnp::word>(header->control_len / sizeof(capnp::word));
  std::span<std::byte> control(reinterpret_cast<std::byte*>(in.words.begin()), header->control_len);
  if (control.size() <= kReadBuffer) {
    KVSTORE_RETURN_IF_ERROR(Fill(control.size(), deadline, "receive"));
    TakeBuffered(control);
  } else {  // larger than the buffer: the rest straight into place
    const size_t got = TakeBuffered(control);
    KVSTORE_RETURN_IF_ERROR(
        ReadExact(control.data() + got, control.size() - got, deadline, "receive"));
  }
  try {
    in.reader =
        std::make_unique<capnp::FlatArrayMessageReader>(in.words.asPtr(), WireReaderOptions());
    (void)in.response().which();
  } catch (const kj::Exception& e) {
    (void)Fail("receive", EPROTO);
    return Status::Internal(std::string("kvstored sent an unreadable reply: ") +
                            e.getDescription().cStr());
  }
  return in;
}

Status ClientConn::ReceiveBulk(std::span<std::byte> dst, Clock::time_point deadline) {
  dst = dst.subspan(TakeBuffered(dst));
  if (dst.empty()) return Status::Ok();
  return ReadExact(dst.data(), dst.size(), deadline, "receive value");
}

Result<uint64_t> ClientConn::ReceiveBulkHashed(std::span<std::byte> dst,
                                               Clock::time_point deadline) {
  constexpr size_t kChunk = 1 << 20;
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(),
                                                                 &XXH3_freeState);
  XXH3_64bits_reset(state.get());
  for (size_t off = 0; off < dst.size(); off += kChunk) {
    size_t n = std::min(kChunk, dst.size() - off);
    KVSTORE_RETURN_IF_ERROR(ReceiveBulk(dst.subspan(off, n), deadline));
    XXH3_64bits_update(state.get(), dst.data() + off, n);
  }
  return XXH3_64bits_digest(state.get());
}

Status ClientConn::DiscardBulk(uint64_t bytes, Clock::time_point deadline) {
  std::vector<std::byte> scratch(std::min<uint64_t>(bytes, 1 << 20));
  while (bytes > 0) {
    size_t n = std::min<uint64_t>(bytes, scratch.size());
    KVSTORE_RETURN_IF_ERROR(ReceiveBulk({scratch.data(), n}, deadline));
    bytes -= n;
  }
  return Status::Ok();
}

}  // namespace kvstore::internal
