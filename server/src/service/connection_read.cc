// The read path of a connection: frames parsed out of a per-connection buffer
// (every small frame that one read brought in, header and control together),
// value bytes read straight into their slot, and the stall watch that cuts a
// frame that stops arriving.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "connection.h"

namespace kvstore::server {

namespace {

constexpr size_t kBulkChunk = 1u << 20;       // at most per read: note progress, hash while hot
constexpr size_t kBulkLowWater = 256u << 10;  // wake up for no less than this (or the rest)
// Values smaller than this are read as the bytes come: raising SO_RCVLOWAT for
// them would cost two setsockopt calls per request for no fewer wake-ups.
constexpr size_t kLowWaterFrom = 64u << 10;
// Completions a chain of values already in the buffer may run inline before
// one is posted (an insert_many of many tiny values must not grow the stack).
constexpr int kMaxInlineDepth = 32;

}  // namespace

// ---------------------------------------------------------------- frames

void Connection::ReadHeader() {
  if (ReadingStopped()) return;
  if (in_read_loop_) {
    next_frame_ = true;  // the loop below takes the next frame when the dispatch returns
    return;
  }
  ReadLoop();
}

void Connection::ReadLoop() {
  in_read_loop_ = true;
  // Unix socket: a read shorter than the room it had emptied the socket; rather
  // than a read that would find nothing, wait for the next bytes.
  bool drained = false;
  while (!ReadingStopped()) {
    if (TakeFrame()) {
      next_frame_ = false;
      Dispatch();
      if (!next_frame_) break;  // the request goes on asynchronously and reads on when done
      continue;
    }
    if (ReadingStopped() || large_control_) break;
    if (!peer_info_.is_unix) {
      ReadMore();
      break;
    }
    if (drained) {
      WaitReadable();
      break;
    }
    size_t room = 0;
    bool fds_came = false;
    ssize_t n = ReceiveUnix(&room, &fds_came);
    if (n == -EAGAIN || n == -EWOULDBLOCK) {
      WaitReadable();
      break;
    }
    if (n <= 0) {
      Close(n == 0 ? "client closed the connection"
                   : std::string("read failed: ") + std::strerror(static_cast<int>(-n)));
      break;
    }
    drained = static_cast<size_t>(n) < room && !fds_came;  // a read stops after fds
  }
  in_read_loop_ = false;
}

std::span<std::byte> Connection::ReadRoom() {
  if (!rbuf_) rbuf_ = std::make_unique<std::byte[]>(kReadBuffer);
  if (rbuf_begin_ > 0) {  // what is left is the start of a frame: move it to the front
    std::memmove(rbuf_.get(), rbuf_.get() + rbuf_begin_, rbuf_end_ - rbuf_begin_);
    rbuf_end_ -= rbuf_begin_;
    rbuf_begin_ = 0;
  }
  return {rbuf_.get() + rbuf_end_, kReadBuffer - rbuf_end_};
}

void Connection::ReadMore() {
  // Asio reads at once only when the last read filled its buffer or an event
  // came since; after a short read it waits for readiness: one epoll_wait and
  // one read per burst of frames.
  std::span<std::byte> room = ReadRoom();
  socket_.async_read_some(asio::buffer(room.data(), room.size()),
                          asio::bind_executor(strand_, [self = shared_from_this()](
                                                           boost::system::error_code ec, size_t n) {
                            if (self->ReadingStopped()) return;
                            if (ec) {
                              self->Close(ec == asio::error::eof ? "client closed the connection"
                                                                 : "read failed: " + ec.message());
                              return;
                            }
                            self->rbuf_end_ += n;
                            self->stream_in_ += n;
                            self->ReadLoop();
                          }));
}

void Connection::WaitReadable() {
  socket_.async_wait(
      StreamSocket::wait_read,
      asio::bind_executor(strand_, [self = shared_from_this()](boost::system::error_code ec) {
        if (self->ReadingStopped()) return;
        if (ec) {
          self->Close("read failed: " + ec.message());
          return;
        }
        self->ReadLoop();
      }));
}

ssize_t Connection::ReceiveUnix(size_t* room, bool* fds_came) {
  std::span<std::byte> at = ReadRoom();
  *room = at.size();
  bool truncated = false;
  std::vector<int> fds;
  ssize_t n =
      transport::ReceiveWithFds(socket_.native_handle(), at.data(), at.size(), &fds, &truncated);
  // A read stops right after the bytes an fd came with (the start of the
  // frame that carries it): the fd goes to the frame whose header and control
  // end at or after this point.
  for (int fd : fds) {
    if (n > 0 && pending_fds_.size() < transport::kMaxFdsPerRead) {
      pending_fds_.push_back({stream_in_ + static_cast<uint64_t>(n), fd});
    } else {
      ::close(fd);
      truncated = true;
    }
  }
  if (truncated) ctx_->metrics->ProtocolError("too_many_fds");
  *fds_came = !fds.empty();
  if (n > 0) {
    rbuf_end_ += static_cast<size_t>(n);
    stream_in_ += static_cast<uint64_t>(n);
  }
  return n;
}

bool Connection::TakeFrame() {
  const size_t have = rbuf_end_ - rbuf_begin_;
  if (have == 0) {
    UnwatchStall();  // between frames: the client may stay idle as long as it likes
    return false;
  }
  // The first bytes of a frame start its stall watch; the rest of its header
  // and then its control part must each follow within --stall-timeout.
  if (!stall_watching_) {
    frame_started_ = SteadyClock::now();
    header_complete_ = false;
    WatchStall(frame_started_);
  }
  if (have < kFrameHeaderSize) return false;
  const std::byte* p = rbuf_.get() + rbuf_begin_;
  if (!header_complete_) {
    auto h = FrameHeader::Decode(p, ctx_->options->store.max_value_bytes + kChecksumTrailerBytes);
    if (!h.ok()) {
      UnwatchStall();
      Fail("bad_header", h.status().message());
      return false;
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
      return false;
    }
    header_complete_ = true;
    WatchStall(SteadyClock::now());
  }
  const size_t need = kFrameHeaderSize + header_.control_len;
  if (need > kReadBuffer) {
    ReadLargeControl();
    return false;
  }
  if (have < need) return false;
  const size_t words = header_.control_len / sizeof(capnp::word);
  if (control_.size() < words) control_ = kj::heapArray<capnp::word>(std::max<size_t>(words, 64));
  // Copied: a frame in the buffer need not start on a word boundary.
  std::memcpy(control_.begin(), p + kFrameHeaderSize, header_.control_len);
  control_words_ = words;
  rbuf_begin_ += need;
  TakeFrameFds(stream_in_ - (rbuf_end_ - rbuf_begin_));
  UnwatchStall();
  return true;
}

void Connection::TakeFrameFds(uint64_t control_end) {
  while (!pending_fds_.empty() && pending_fds_.front().first <= control_end) {
    frame_fds_.push_back(pending_fds_.front().second);
    pending_fds_.erase(pending_fds_.begin());
  }
}

void Connection::ReadLargeControl() {
  // Larger than the buffer: the rest of the control part goes straight into its array.
  const size_t buffered = rbuf_end_ - rbuf_begin_ - kFrameHeaderSize;
  control_ = kj::heapArray<capnp::word>(header_.control_len / sizeof(capnp::word));
  control_words_ = control_.size();
  auto* dst = reinterpret_cast<std::byte*>(control_.begin());
  std::memcpy(dst, rbuf_.get() + rbuf_begin_ + kFrameHeaderSize, buffered);
  const size_t rest = header_.control_len - buffered;
  rbuf_begin_ = rbuf_end_ = 0;
  large_control_ = true;
  asio::async_read(socket_, asio::buffer(dst + buffered, rest),
                   asio::bind_executor(strand_, [self = shared_from_this(), rest](
                                                    boost::system::error_code ec, size_t) {
                     self->large_control_ = false;
                     self->UnwatchStall();
                     if (ec) {
                       self->Close("read failed mid-message: " + ec.message());
                       return;
                     }
                     self->stream_in_ += rest;
                     self->TakeFrameFds(self->stream_in_);
                     self->DispatchThenRead();
                   }));
}

void Connection::DispatchThenRead() {
  in_read_loop_ = true;
  next_frame_ = false;
  Dispatch();
  in_read_loop_ = false;
  if (next_frame_) ReadLoop();
}

// ---------------------------------------------------------------- stall watch

void Connection::WatchStall(SteadyClock::time_point since) {
  stall_since_ = since;
  stall_watching_ = true;
  if (!stall_timer_armed_) ArmStallTimer(since + ctx_->options->stall_timeout);
}

void Connection::ArmStallTimer(SteadyClock::time_point at) {
  // One timer per connection, moved only when it fires: noting progress is a
  // store of a time stamp, not a system call per message.
  stall_timer_armed_ = true;
  stall_timer_.expires_at(at);
  stall_timer_.async_wait(
      asio::bind_executor(strand_, [self = shared_from_this()](boost::system::error_code ec) {
        self->stall_timer_armed_ = false;
        if (ec || self->closed_ || !self->stall_watching_) return;
        const auto due = self->stall_since_ + self->ctx_->options->stall_timeout;
        if (SteadyClock::now() < due) {
          self->ArmStallTimer(due);
          return;
        }
        self->ctx_->metrics->ProtocolError("stalled");
        self->ctx_->log_limit->Warn(
            "stalled",
            "connection {} from {}: frame stopped arriving for {} ms mid-transfer; closing it "
            "and discarding the partial request (client hung or network stalled)",
            self->id_, self->peer_, self->ctx_->options->stall_timeout.count());
        self->Close("stalled mid-frame");
      }));
}

// ---------------------------------------------------------------- value bytes

size_t Connection::TakeBuffered(std::span<std::byte> dst) {
  const size_t n = std::min(dst.size(), rbuf_end_ - rbuf_begin_);
  if (n > 0) {
    std::memcpy(dst.data(), rbuf_.get() + rbuf_begin_, n);
    rbuf_begin_ += n;
  }
  return n;
}

void Connection::ContinueInline(std::function<void()> next) {
  if (inline_depth_ >= kMaxInlineDepth) {
    asio::post(strand_, std::move(next));
    return;
  }
  ++inline_depth_;
  next();
  --inline_depth_;
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
  if (size_t n = TakeBuffered(dst); n > 0) {
    ctx_->metrics->AddBytesIn(n);
    XXH3_64bits_update(hash_.get(), dst.data(), n);
    dst = dst.subspan(n);
  }
  if (dst.empty()) {
    SetReceiveLowWater(1);  // frame headers and control messages are small
    UnwatchStall();
    ContinueInline(std::move(done));
    return;
  }
  // A large value: wake up only when a large piece is there (SO_RCVLOWAT), not
  // per 64 KiB segment. Never more than what is still to come for this value
  // (the rest of the frame may be all the client sends before it waits for
  // the reply), and never more than an eighth of the fixed receive buffer, so
  // the window always has room for the sender to reach the mark.
  if (rcvlowat_ > 1 || dst.size() >= kLowWaterFrom) {
    SetReceiveLowWater(std::min({dst.size(), kBulkLowWater, max_rcvlowat_}));
  }
  WatchStall(SteadyClock::now());
  socket_.async_read_some(
      asio::buffer(dst.data(), std::min(dst.size(), kBulkChunk)),
      asio::bind_executor(strand_, [this, self = shared_from_this(), dst, done = std::move(done)](
                                       boost::system::error_code ec, size_t n) mutable {
        if (ec) {
          UnwatchStall();
          Close("read failed mid-value: " + ec.message());
          return;
        }
        stream_in_ += n;
        ctx_->metrics->AddBytesIn(n);
        XXH3_64bits_update(hash_.get(), dst.data(), n);  // while the piece is in cache
        ReadBulk(dst.subspan(n), std::move(done));
      }));
}

void Connection::ReadTrailer(std::function<void(uint64_t)> done) {
  const size_t got = TakeBuffered(trailer_buf_);
  auto finish = [this, done = std::move(done)] {
    uint64_t checksum;
    std::memcpy(&checksum, trailer_buf_.data(), sizeof(checksum));
    done(checksum);
  };
  if (got == trailer_buf_.size()) {
    UnwatchStall();
    ContinueInline(std::move(finish));
    return;
  }
  WatchStall(SteadyClock::now());
  asio::async_read(socket_, asio::buffer(trailer_buf_.data() + got, trailer_buf_.size() - got),
                   asio::bind_executor(
                       strand_, [this, self = shared_from_this(), got, finish = std::move(finish)](
                                    boost::system::error_code ec, size_t) {
                         UnwatchStall();
                         if (ec) {
                           Close("read failed at the value's checksum: " + ec.message());
                           return;
                         }
                         stream_in_ += trailer_buf_.size() - got;
                         finish();
                       }));
}

void Connection::DrainBulk(uint64_t bytes, std::function<void()> done) {
  const size_t buffered = std::min<uint64_t>(bytes, rbuf_end_ - rbuf_begin_);
  rbuf_begin_ += buffered;
  bytes -= buffered;
  if (bytes == 0) {
    UnwatchStall();
    ContinueInline(std::move(done));
    return;
  }
  if (drain_buf_.empty()) drain_buf_.resize(256 << 10);
  size_t n = std::min<uint64_t>(bytes, drain_buf_.size());
  WatchStall(SteadyClock::now());
  asio::async_read(socket_, asio::buffer(drain_buf_.data(), n), TransferAllLarge(),
                   asio::bind_executor(
                       strand_, [this, self = shared_from_this(), bytes, n, done = std::move(done)](
                                    boost::system::error_code ec, size_t) mutable {
                         if (ec) {
                           UnwatchStall();
                           Close("read failed while discarding a refused value: " + ec.message());
                           return;
                         }
                         stream_in_ += n;
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
