// The write path of a connection: replies queued in order of completion,
// value bytes sent straight from slot memory, the cap on what queued replies
// pin (--max-pending-bytes), and the write deadline that closes a connection
// whose peer does not read.
#include <sys/socket.h>

#include <array>

#include <spdlog/spdlog.h>

#include "connection.h"

namespace kvstore::server {

namespace {

constexpr size_t kMaxQueuedReplies = 4096;  // a client that never reads is cut off

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
  capnp::MallocMessageBuilder msg;
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
  if (writing_ || write_queue_.empty() || closed_) return;
  writing_ = true;
  Outgoing& out = write_queue_.front();
  std::vector<asio::const_buffer> buffers;
  buffers.emplace_back(out.frame.header.data(), out.frame.header.size());
  auto control = out.frame.control_bytes();
  buffers.emplace_back(control.data(), control.size());
  if (out.delivery) {
    for (const auto& e : out.delivery->entries()) {
      if (!e.bytes.empty()) buffers.emplace_back(e.bytes.data(), e.bytes.size());
    }
    ctx_->metrics->AddBytesOut(out.delivery->total_bytes());
    if (out.delivery->drop()) {
      // Held until the client confirms it has every byte. Registered before the
      // write: the acknowledgement can be read before this write's handler runs.
      Unacked& u = unacked_[out.request_id];
      u.started = SteadyClock::now();
      u.delivery = std::move(out.delivery);
      u.bytes = std::move(out.bytes);
      u.timer = std::make_unique<asio::steady_timer>(strand_);
      u.timer->expires_after(ctx_->options->ack_timeout);
      uint64_t rid = out.request_id;
      u.timer->async_wait([self = shared_from_this(), rid](boost::system::error_code ec) {
        if (ec || self->closed_) return;
        spdlog::warn(
            "connection {} from {}: drop_select {} not acknowledged in {} ms; "
            "its entries go back to the store and the connection closes",
            self->id_, self->peer_, rid, self->ctx_->options->ack_timeout.count());
        self->Close("delivery not acknowledged");
      });
    }
  }
  // The write deadline: every step of the write notes that bytes moved.
  auto noting_progress = [this](const boost::system::error_code& ec, size_t so_far) {
    write_progress_ = SteadyClock::now();
    return TransferAllLarge()(ec, so_far);
  };
  write_progress_ = SteadyClock::now();
  ++write_generation_;
  ArmWriteDeadline(write_progress_ + ctx_->options->stall_timeout);
  asio::async_write(socket_, buffers, noting_progress,
                    asio::bind_executor(
                        strand_, [self = shared_from_this()](boost::system::error_code ec, size_t) {
                          self->writing_ = false;
                          ++self->write_generation_;
                          self->write_timer_.cancel();
                          Outgoing out = std::move(self->write_queue_.front());
                          self->write_queue_.pop_front();
                          if (ec) {
                            // An unacknowledged drop_select goes back to the store in Close.
                            self->Close("write failed: " + ec.message());
                            return;
                          }
                          if (out.delivery)
                            out.delivery->Finish(true);  // select: the bytes are out
                          if (self->write_queue_.empty() && self->close_after_write_) {
                            self->Close("request refused");
                            return;
                          }
                          self->WriteNext();
                          self->MaybeFinishShutdown();
                        }));
}

void Connection::ArmWriteDeadline(SteadyClock::time_point at) {
  write_timer_.expires_at(at);
  write_timer_.async_wait([self = shared_from_this(),
                           gen = write_generation_](boost::system::error_code ec) {
    if (ec || gen != self->write_generation_ || self->closed_ || !self->writing_) return;
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
