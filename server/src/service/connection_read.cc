// The read path of a connection: frame header, control message, value bytes,
// and the stall timer that cuts a frame that stops arriving.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <spdlog/spdlog.h>

#include "connection.h"

namespace kvstore::server {

namespace {

constexpr size_t kBulkChunk = 1u << 20;  // at most per read: re-arm the stall timer, hash while hot
constexpr size_t kBulkLowWater = 256u << 10;  // wake up for no less than this (or the rest)

}  // namespace

// ---------------------------------------------------------------- read path

void Connection::ReadHeader() {
  if (ReadingStopped()) return;
  if (peer_info_.is_unix) {
    ReadHeaderUnix();
    return;
  }
  // The first bytes may take as long as the client likes (idle between frames);
  // once a frame has begun, the rest must keep coming (stall timer).
  socket_.async_read_some(
      asio::buffer(header_buf_),
      asio::bind_executor(
          strand_, [self = shared_from_this()](boost::system::error_code ec, size_t n) {
            if (ec) {
              self->Close(ec == asio::error::eof ? "client closed the connection" : ec.message());
              return;
            }
            self->OnHeaderStart(n);
          }));
}

void Connection::ReadHeaderUnix() {
  socket_.async_wait(
      StreamSocket::wait_read,
      asio::bind_executor(strand_, [self = shared_from_this()](boost::system::error_code ec) {
        if (ec) {
          self->Close(ec.message());
          return;
        }
        if (self->ReadingStopped()) return;
        bool truncated = false;
        std::vector<int> fds;
        ssize_t n =
            transport::ReceiveWithFds(self->socket_.native_handle(), self->header_buf_.data(),
                                      self->header_buf_.size(), &fds, &truncated);
        for (int fd : fds) {
          if (self->frame_fds_.size() < transport::kMaxFdsPerRead) {
            self->frame_fds_.push_back(fd);
          } else {
            ::close(fd);
            truncated = true;
          }
        }
        if (truncated) self->ctx_->metrics->ProtocolError("too_many_fds");
        if (n == -EAGAIN || n == -EWOULDBLOCK) {
          self->ReadHeaderUnix();
          return;
        }
        if (n <= 0) {
          self->Close(n == 0 ? "client closed the connection"
                             : std::strerror(static_cast<int>(-n)));
          return;
        }
        self->OnHeaderStart(static_cast<size_t>(n));
      }));
}

void Connection::OnHeaderStart(size_t got) {
  frame_started_ = SteadyClock::now();
  auto finish = [this, self = shared_from_this()](boost::system::error_code ec, size_t) {
    DisarmStallTimer();
    if (ec) {
      Close("read failed mid-header: " + ec.message());
      return;
    }
    auto h = FrameHeader::Decode(header_buf_.data(),
                                 ctx_->options->store.max_value_bytes + kChecksumTrailerBytes);
    if (!h.ok()) {
      Fail("bad_header", h.status().message());
      return;
    }
    header_ = *h;
    // Before hello a peer may send one small control message and nothing else:
    // a value (or a large message) is never read, the connection just closes.
    constexpr uint32_t kMaxUnauthenticatedControl = 64 << 10;
    if (!authenticated_ &&
        (header_.bulk_len != 0 || header_.control_len > kMaxUnauthenticatedControl)) {
      ctx_->metrics->ProtocolError("unauthenticated_bulk");
      ctx_->log_limit->Warn("unauthenticated_bulk",
                            "connection {} from {}: sent {} value bytes / {} control bytes "
                            "before hello; closing it unread",
                            id_, peer_, header_.bulk_len, header_.control_len);
      Close("value bytes before hello");
      return;
    }
    ReadControl();
  };
  if (got == header_buf_.size()) {
    finish({}, 0);
    return;
  }
  ArmStallTimer();
  asio::async_read(socket_, asio::buffer(header_buf_.data() + got, header_buf_.size() - got),
                   asio::bind_executor(strand_, std::move(finish)));
}

void Connection::ReadControl() {
  control_ = kj::heapArray<capnp::word>(header_.control_len / sizeof(capnp::word));
  ArmStallTimer();
  asio::async_read(socket_, asio::buffer(control_.begin(), header_.control_len),
                   asio::bind_executor(
                       strand_, [self = shared_from_this()](boost::system::error_code ec, size_t) {
                         self->DisarmStallTimer();
                         if (ec) {
                           self->Close("read failed mid-message: " + ec.message());
                           return;
                         }
                         self->Dispatch();
                       }));
}

void Connection::ArmStallTimer() {
  uint64_t gen = ++stall_generation_;
  stall_timer_.expires_after(ctx_->options->stall_timeout);
  stall_timer_.async_wait(
      asio::bind_executor(strand_, [self = shared_from_this(), gen](boost::system::error_code ec) {
        if (ec || gen != self->stall_generation_ || self->closed_) return;
        self->ctx_->metrics->ProtocolError("stalled");
        self->ctx_->log_limit->Warn(
            "stalled",
            "connection {} from {}: frame stopped arriving for {} ms mid-transfer; closing it "
            "and discarding the partial request (client hung or network stalled)",
            self->id_, self->peer_, self->ctx_->options->stall_timeout.count());
        self->Close("stalled mid-frame");
      }));
}

void Connection::DisarmStallTimer() {
  ++stall_generation_;
  stall_timer_.cancel();
}

void Connection::SetReceiveLowWater(size_t bytes) {
  // Unix sockets wake readers for any byte whatever the mark: nothing to gain.
  if (bytes == rcvlowat_ || peer_info_.is_unix || peer_info_.tls) return;
  int v = static_cast<int>(bytes);
  if (::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVLOWAT, &v, sizeof(v)) == 0) {
    rcvlowat_ = bytes;
  }
}

void Connection::ReadBulk(std::span<std::byte> dst, std::function<void()> done) {
  if (dst.empty()) {
    SetReceiveLowWater(1);  // frame headers and control messages are small
    DisarmStallTimer();
    done();
    return;
  }
  // Wake up only when a large piece is there (SO_RCVLOWAT), not per 64 KiB
  // segment. Never more than what is still to come for this value (the rest
  // of the frame may be all the client sends before it waits for the reply),
  // and never more than an eighth of the fixed receive buffer, so the window
  // always has room for the sender to reach the mark.
  SetReceiveLowWater(std::min({dst.size(), kBulkLowWater, max_rcvlowat_}));
  ArmStallTimer();
  socket_.async_read_some(
      asio::buffer(dst.data(), std::min(dst.size(), kBulkChunk)),
      asio::bind_executor(strand_, [this, self = shared_from_this(), dst, done = std::move(done)](
                                       boost::system::error_code ec, size_t n) mutable {
        if (ec) {
          DisarmStallTimer();
          Close("read failed mid-value: " + ec.message());
          return;
        }
        ctx_->metrics->AddBytesIn(n);
        XXH3_64bits_update(hash_.get(), dst.data(), n);  // while the piece is in cache
        ReadBulk(dst.subspan(n), std::move(done));
      }));
}

void Connection::ReadTrailer(std::function<void(uint64_t)> done) {
  ArmStallTimer();
  asio::async_read(
      socket_, asio::buffer(trailer_buf_),
      asio::bind_executor(strand_, [this, self = shared_from_this(), done = std::move(done)](
                                       boost::system::error_code ec, size_t) {
        DisarmStallTimer();
        if (ec) {
          Close("read failed at the value's checksum: " + ec.message());
          return;
        }
        uint64_t checksum;
        std::memcpy(&checksum, trailer_buf_.data(), sizeof(checksum));
        done(checksum);
      }));
}

void Connection::DrainBulk(uint64_t bytes, std::function<void()> done) {
  if (bytes == 0) {
    DisarmStallTimer();
    done();
    return;
  }
  if (drain_buf_.empty()) drain_buf_.resize(256 << 10);
  size_t n = std::min<uint64_t>(bytes, drain_buf_.size());
  ArmStallTimer();
  asio::async_read(socket_, asio::buffer(drain_buf_.data(), n), TransferAllLarge(),
                   asio::bind_executor(
                       strand_, [this, self = shared_from_this(), bytes, n, done = std::move(done)](
                                    boost::system::error_code ec, size_t) mutable {
                         if (ec) {
                           DisarmStallTimer();
                           Close("read failed while discarding a refused value: " + ec.message());
                           return;
                         }
                         DrainBulk(bytes - n, std::move(done));
                       }));
}

Result<std::vector<Key>> Connection::ParseKeys(capnp::List<capnp::Data>::Reader keys, Op op) {
  KVSTORE_RETURN_IF_ERROR(CheckKeyCount(keys.size(), op));
  std::vector<Key> out;
  out.reserve(keys.size());
  for (auto k : keys) {
    KVSTORE_ASSIGN_OR_RETURN(Key key, KeyFromWire(k));
    out.push_back(key);
  }
  return out;
}

}  // namespace kvstore::server
