// The write path of a connection: replies queued in order of completion,
// value bytes sent straight from slot memory, the cap on what queued replies
// pin (--max-pending-bytes), and the write deadline that closes a connection
// whose peer does not read.
#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <cerrno>
#include <climits>
#include <cstring>

#include <spdlog/spdlog.h>

#include "connection.h"

namespace kvstore::server {

namespace {

constexpr size_t kMaxQueuedReplies = 4096;  // a client that never reads is cut off
constexpr unsigned kReplyFirstSegmentWords = 128;

}  // namespace

void Connection::Reply(uint64_t id, Op op, const Status& status, const FillReply& fill,
                       std::unique_ptr<Delivery> delivery) {
  uint64_t bulk = delivery ? delivery->total_bytes() : 0;
  if (bulk > 0 && !closed_) {
    // Values waiting in the queue stay pinned (a removed entry's slot too):
    // they count against --max-pending-bytes until the peer has read them.
    if (Status s = CheckPendingBytes(bulk, "this reply's values"); !s.ok()) {
      delivery->Finish(false);  // drop_select: the entries stay for the next taker
      ReplyStatus(id, op, s);
      return;
    }
  }
  ctx_->metrics->CountRequest(op, status.code(), SecondsSince(frame_started_));
  if (ctx_->credentials->required() && tenant_ != nullptr) {
    ctx_->metrics->CountNamespaceRequest(ctx_->credentials->NamespaceName(ns_), op, status.code());
  }
  if (closed_) return;
  // Most replies are a few words: a first segment of 1 KiB (not the default
  // 8 KiB, zeroed per reply); larger ones grow it.
  capnp::MallocMessageBuilder msg(kReplyFirstSegmentWords);
  auto r = msg.initRoot<wire::Response>();
  r.setId(id);
  r.setCode(CodeToWire(status.code()));
  if (!status.ok()) r.setMessage(status.message());
  fill(r);
  if (write_queue_.size() >= kMaxQueuedReplies) {
    ctx_->metrics->ProtocolError("not_reading");
    Close("client does not read its replies (" + std::to_string(write_queue_.size()) + " queued)");
    return;
  }
  write_queue_.push_back(
      {EncodeFrame(msg, bulk), std::move(delivery), id, PendingCharge(&ctx_->pending_bytes, bulk)});
  WriteNext();
}

void Connection::ReplyStatus(uint64_t id, Op op, const Status& status) {
  Reply(id, op, status, [](wire::Response::Builder r) { r.setNone(); });
}

void Connection::ReplyCount(uint64_t id, Op op, uint64_t n) {
  Reply(id, op, Status::Ok(), [n](wire::Response::Builder r) { r.setCount(n); });
}

void Connection::ReplyEntries(uint64_t id, Op op, const Delivery& d,
                              std::unique_ptr<Delivery> values) {
  Reply(
      id, op, Status::Ok(),
      [&d](wire::Response::Builder r) {
        auto list = r.initEntries(static_cast<unsigned>(d.entries().size()));
        for (size_t i = 0; i < d.entries().size(); ++i) {
          list[i].setKey(KeyToWire(d.entries()[i].key));
          MetaToWire(d.entries()[i].meta, list[i].initMeta());
        }
      },
      std::move(values));
}

void Connection::WriteNext() {
  while (!writing_ && !write_queue_.empty() && !closed_) {
    Outgoing& out = write_queue_.front();
    // Header, control part and values gathered into one send.
    write_iov_.clear();
    write_iov_.push_back({out.frame.header.data(), out.frame.header.size()});
    auto control = out.frame.control_bytes();
    write_iov_.push_back({const_cast<std::byte*>(control.data()), control.size()});
    size_t total = out.frame.header.size() + control.size();
    if (out.delivery) {
      for (const auto& e : out.delivery->entries()) {
        if (e.bytes.empty()) continue;
        write_iov_.push_back({const_cast<std::byte*>(e.bytes.data()), e.bytes.size()});
        total += e.bytes.size();
      }
      ctx_->metrics->AddBytesOut(out.delivery->total_bytes());
      // Held until the client confirms it has every byte. Registered before the
      // write: the acknowledgement can be read before this write's handler runs.
      if (out.delivery->drop()) HoldUntilAcked(out);
    }
    // Most replies fit the socket's buffer: sent now, without a trip through the
    // event loop (and without a write deadline to arm).
    size_t sent = SendNow(write_iov_, total);
    if (closed_) return;
    if (sent == total) {
      FinishWrite();
      continue;
    }
    std::vector<asio::const_buffer> rest;
    for (const iovec& v : write_iov_) {
      if (sent >= v.iov_len) {
        sent -= v.iov_len;
        continue;
      }
      rest.emplace_back(static_cast<const std::byte*>(v.iov_base) + sent, v.iov_len - sent);
      sent = 0;
    }
    writing_ = true;
    // The write deadline: every step of the write notes that bytes moved.
    auto noting_progress = [this](const boost::system::error_code& ec, size_t so_far) {
      write_progress_ = SteadyClock::now();
      return TransferAllLarge()(ec, so_far);
    };
    write_progress_ = SteadyClock::now();
    if (!write_timer_armed_) ArmWriteDeadline(write_progress_ + ctx_->options->stall_timeout);
    asio::async_write(socket_, rest, noting_progress,
                      asio::bind_executor(strand_, [self = shared_from_this()](
                                                       boost::system::error_code ec, size_t) {
                        self->writing_ = false;
                        if (ec) {
                          self->write_queue_.pop_front();
                          // An unacknowledged drop_select goes back to the store in Close.
                          self->Close("write failed: " + ec.message());
                          return;
                        }
                        self->FinishWrite();
                        self->WriteNext();
                        self->MaybeFinishShutdown();
                      }));
    return;
  }
  if (shutting_down_ && !closed_) {
    // Not from inside the call that queued the reply: it may have more to do.
    asio::post(strand_, [self = shared_from_this()] { self->MaybeFinishShutdown(); });
  }
}

size_t Connection::SendNow(std::vector<iovec>& iov, size_t total) {
  msghdr mh{};
  mh.msg_iov = iov.data();
  mh.msg_iovlen = std::min<size_t>(iov.size(), IOV_MAX);
  ssize_t n;
  do {
    n = ::sendmsg(socket_.native_handle(), &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n >= 0) return std::min(static_cast<size_t>(n), total);
  if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
  const int err = errno;
  write_queue_.pop_front();
  Close(std::string("write failed: ") + std::strerror(err));
  return 0;
}

void Connection::FinishWrite() {
  Outgoing out = std::move(write_queue_.front());
  write_queue_.pop_front();
  if (out.delivery) out.delivery->Finish(true);  // select: the bytes are out
  if (write_queue_.empty() && close_after_write_) Close("request refused");
}

void Connection::HoldUntilAcked(Outgoing& out) {
  Unacked& u = unacked_[out.request_id];
  u.started = SteadyClock::now();
  u.delivery = std::move(out.delivery);
  u.bytes = std::move(out.bytes);
  if (!ack_timer_armed_) ArmAckTimer(u.started + ctx_->options->ack_timeout);
}

void Connection::ArmAckTimer(SteadyClock::time_point at) {
  // One timer for all of the connection's deliveries awaiting their ack: when
  // it fires it looks at the oldest, so an ack costs no timer call.
  ack_timer_armed_ = true;
  ack_timer_.expires_at(at);
  ack_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    self->ack_timer_armed_ = false;
    if (ec || self->closed_ || self->unacked_.empty()) return;
    auto oldest = self->unacked_.begin();
    for (auto it = self->unacked_.begin(); it != self->unacked_.end(); ++it) {
      if (it->second.started < oldest->second.started) oldest = it;
    }
    const auto due = oldest->second.started + self->ctx_->options->ack_timeout;
    if (SteadyClock::now() < due) {
      self->ArmAckTimer(due);
      return;
    }
    spdlog::warn(
        "connection {} from {}: drop_select {} not acknowledged in {} ms; "
        "its entries go back to the store and the connection closes",
        self->id_, self->peer_, oldest->first, self->ctx_->options->ack_timeout.count());
    self->Close("delivery not acknowledged");
  });
}

void Connection::ArmWriteDeadline(SteadyClock::time_point at) {
  // Armed when a reply first has to wait for the socket, then moved only when
  // it fires: writes that make progress cost no timer call.
  write_timer_armed_ = true;
  write_timer_.expires_at(at);
  write_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    self->write_timer_armed_ = false;
    if (ec || self->closed_ || !self->writing_) return;
    const auto stall = self->ctx_->options->stall_timeout;
    const auto quiet_until = self->write_progress_ + stall;
    if (SteadyClock::now() < quiet_until) {  // bytes moved since: wait for the rest
      self->ArmWriteDeadline(quiet_until);
      return;
    }
    self->ctx_->metrics->ProtocolError("write_stalled");
    self->ctx_->log_limit->Warn(
        "write_stalled",
        "connection {} from {}: the peer read none of its reply for {} ms (--stall-timeout); "
        "closing it and freeing what its {} queued and {} unacknowledged replies pinned",
        self->id_, self->peer_, stall.count(), self->write_queue_.size(), self->unacked_.size());
    self->Close("the peer does not read its replies");
  });
}

void Connection::CloseWithReply(uint64_t id, Op op, const Status& status, const std::string& why) {
  ctx_->metrics->CountRequest(op, status.code(), SecondsSince(frame_started_));
  if (!closed_ && !writing_ && write_queue_.empty()) {
    capnp::MallocMessageBuilder msg;
    auto r = msg.initRoot<wire::Response>();
    r.setId(id);
    r.setCode(CodeToWire(status.code()));
    r.setMessage(status.message());
    r.setNone();
    OutFrame frame = EncodeFrame(msg, 0);
    auto control = frame.control_bytes();
    std::array<iovec, 2> iov{iovec{frame.header.data(), frame.header.size()},
                             iovec{const_cast<std::byte*>(control.data()), control.size()}};
    msghdr mh{};
    mh.msg_iov = iov.data();
    mh.msg_iovlen = iov.size();
    // Never blocks: a peer that does not read learns the reason from the close alone.
    (void)::sendmsg(socket_.native_handle(), &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
  }
  Close(why);
}

}  // namespace kvstore::server
