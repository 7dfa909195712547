// The one-sided half of a connection (client/transport/include/kvstore/
// transport/transport.h): choosing the transport at hello, the client's
// announced regions, inserts the store pulls and selects it pushes.
#include <poll.h>

#include <spdlog/spdlog.h>

#include "connection.h"
#include "kvstore/transport/negotiation.h"

namespace kvstore::server {

namespace {

// True when the peer has closed its end of `fd` (it exited or closed the
// connection): a zero-timeout poll, no data consumed.
bool PeerClosed(int fd) {
  pollfd p{fd, POLLRDHUP, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

}  // namespace

void Connection::NegotiateTransport(wire::Hello::Reader r) {
  // Nothing the client says names a process or an address: on the Unix socket
  // what it shares is all the store can reach.
  transport::NegotiationInput in;
  in.server = true;
  in.unix_socket = peer_info_.is_unix;
  in.local_memory = ctx_->local_transport;
  in.peer_memory = r.getSharedMemory();
  in.local_rdma = ctx_->rdma_available && ctx_->rdma_device != nullptr;
  in.local_rdma_unavailable = ctx_->rdma_unavailable;
  in.peer_rdma_params = Bytes(r.getRdmaParams());
  transport::Choice choice = transport::Negotiate(in);
  if (choice.kind == transport::Kind::kLocal) {
    remote_ = transport::MakeLocalAccess();
  } else if (choice.kind == transport::Kind::kRdma) {
    std::weak_ptr<Connection> weak = weak_from_this();
    auto rdma =
        transport::AcceptRdma(*ctx_->rdma_device, Bytes(r.getRdmaParams()), ctx_->rdma_local_lkey,
                              [weak, strand = strand_](std::function<void()> fn) {
                                asio::post(strand, [weak, fn = std::move(fn)] {
                                  if (auto self = weak.lock(); self && !self->closed_) fn();
                                });
                              });
    if (rdma.ok()) {
      remote_ = std::move(rdma).value();
    } else {
      choice = {transport::Kind::kTcp, "RDMA queue pair setup failed: " + rdma.status().message(),
                std::nullopt};
    }
  }
  if (remote_) regions_.set_kind(choice.kind);
  // A TCP client that asked to share memory: say why not local.
  if (!peer_info_.is_unix && choice.kind == transport::Kind::kTcp && r.getSharedMemory()) {
    choice.reason +=
        std::string("; local transport: ") +
        (!ctx_->local_transport      ? "disabled on this kvstored (--no-local-transport)"
         : ctx_->unix_socket.empty() ? "this kvstored has no Unix socket (--unix-socket)"
                                     : "the client is told the Unix socket " + ctx_->unix_socket);
  }
  ctx_->transport_log->LogOnce(choice);
}

void Connection::HandleRegion(uint64_t id, const wire::Request::Reader& req) {
  Status s;
  if (!remote_) {
    s = Status::InvalidArgument(
        "this connection moves values over tcp (no one-sided transport was negotiated); "
        "send values in the frame instead of registering regions");
  } else if (req.isRegisterRegion()) {
    auto a = req.getRegisterRegion();
    if (a.getSharedFd()) {
      if (frame_fds_.size() != 1) {
        ctx_->metrics->ProtocolError("region_fd");
        s = Status::InvalidArgument(
            "a shared region's announcement must carry exactly one fd "
            "(SCM_RIGHTS, on the Unix socket); it carried " +
            std::to_string(frame_fds_.size()));
      } else {
        int fd = frame_fds_.back();
        frame_fds_.pop_back();
        auto mapping = transport::SharedMapping::Map(fd, transport::RegionTable::kMaxSharedBytes);
        s = mapping.ok() ? regions_.AddShared(a.getId(), std::move(mapping).value())
                         : mapping.status();
      }
    } else {
      s = regions_.Add(a.getId(), Bytes(a.getDescriptor()));
    }
  } else {
    s = regions_.Remove(req.getUnregisterRegion());
  }
  ReplyStatus(id, Op::kRegion, s);
}

Result<transport::RemoteRange> Connection::ResolveRemote(wire::RemoteBuffer::Reader b) const {
  if (!remote_) {
    return Status::InvalidArgument(
        "this connection moves values over tcp (no one-sided transport was negotiated); "
        "send the value in the frame");
  }
  return regions_.Resolve({b.getRegion(), b.getOffset(), b.getLength(), Bytes(b.getDescriptor())});
}

Result<transport::RemoteRange> Connection::ResolvePullSource(wire::RemoteBuffer::Reader b,
                                                             uint64_t size) const {
  if (b.getLength() != size) {
    ctx_->metrics->ProtocolError("size_mismatch");
    return Status::InvalidArgument("insert declares " + std::to_string(size) +
                                   " value bytes but names a source of " +
                                   std::to_string(b.getLength()));
  }
  return ResolveRemote(b);
}

void Connection::InsertByPull(uint64_t id, const Key& key, const EntryMeta& meta,
                              std::chrono::milliseconds ttl, wire::RemoteBuffer::Reader source) {
  auto done = [this](uint64_t rid, const Status& s) {
    ReplyStatus(rid, Op::kInsert, s);
    ReadHeader();
  };
  auto addr = ResolvePullSource(source, meta.size);
  if (!addr.ok()) {
    done(id, addr.status());
    return;
  }
  auto res = ctx_->store->Reserve(key, meta, ttl, StoreNs());
  if (!res.ok()) {
    done(id, NameNamespace(res.status()));
    return;
  }
  if (res->exists) {
    ReplyCount(id, Op::kInsert, 0);
    ReadHeader();
    return;
  }
  reservation_ = std::move(res).value();
  XXH3_64bits_reset(hash_.get());
  // Reading stops until the pull is done: the reservation is this connection's one in flight.
  PullNext(id, *addr, 0);
}

namespace {
// Local pulls go in pieces hashed while they are still in cache; an RDMA
// READ moves the whole value at once (the NIC does not touch the CPU cache).
uint64_t PullPiece(transport::Kind kind, uint64_t left) {
  constexpr uint64_t kLocalPiece = 1u << 20;
  return kind == transport::Kind::kLocal ? std::min(kLocalPiece, left) : left;
}
}  // namespace

bool Connection::PullBatchItem(size_t i, transport::RemoteRange src, uint64_t done_bytes) {
  for (;;) {
    std::span<std::byte> slot = batch_->reserved[i]->bytes();
    if (done_bytes == slot.size()) {
      ctx_->metrics->OneSidedTransfer(transport::KindName(remote_->kind()), "pull", true);
      ctx_->metrics->AddBytesIn(slot.size());
      batch_->computed[i] = XXH3_64bits_digest(hash_.get());
      return true;
    }
    std::span<std::byte> piece =
        slot.subspan(done_bytes, PullPiece(remote_->kind(), slot.size() - done_bytes));
    // The local transport completes inline: loop here instead of recursing per piece.
    struct Inline {
      bool returned = false;  // Read has returned: a completion now is asynchronous
      std::optional<Status> status;
    };
    auto state = std::make_shared<Inline>();
    remote_->Read(
        src.Advance(done_bytes), piece,
        [this, self = shared_from_this(), i, src, done_bytes, piece, state](Status s) {
          if (!state->returned) {
            state->status = std::move(s);
            return;
          }
          if (closed_ || !batch_) return;  // Close() freed the batch's slots
          if (OnBatchPiece(i, piece, s) && !PullBatchItem(i, src, done_bytes + piece.size())) {
            return;
          }
          ReadBatchNext();
        });
    state->returned = true;
    if (!state->status) return false;
    if (!OnBatchPiece(i, piece, *state->status)) return true;
    done_bytes += piece.size();
  }
}

bool Connection::OnBatchPiece(size_t i, std::span<const std::byte> piece, const Status& s) {
  if (s.ok()) {
    XXH3_64bits_update(hash_.get(), piece.data(), piece.size());
    return true;
  }
  ctx_->metrics->OneSidedTransfer(transport::KindName(remote_->kind()), "pull", false);
  ctx_->store->Abort(std::move(*batch_->reserved[i]));
  spdlog::warn("connection {} from {}: insert_many could not read value {}: {}", id_, peer_, i,
               s.message());
  batch_->reserved[i] = Status(
      s.code(), "kvstored could not read the value from the client's memory: " + s.message() +
                    "; this key was not stored");
  return false;
}

void Connection::PullNext(uint64_t id, transport::RemoteRange src, uint64_t done_bytes) {
  std::span<std::byte> slot = reservation_->bytes();
  if (done_bytes == slot.size()) {
    ctx_->metrics->OneSidedTransfer(transport::KindName(remote_->kind()), "pull", true);
    ctx_->metrics->AddBytesIn(slot.size());
    // A client that cannot read its value (GPU memory) leaves the checksum to the store.
    if (pull_checksum_by_store_) reservation_->meta.checksum = XXH3_64bits_digest(hash_.get());
    FinishInsert(id);
    return;
  }
  std::span<std::byte> piece =
      slot.subspan(done_bytes, PullPiece(remote_->kind(), slot.size() - done_bytes));
  remote_->Read(
      src.Advance(done_bytes), piece,
      [this, self = shared_from_this(), id, src, done_bytes, piece](Status s) {
        if (closed_ || !reservation_) return;  // Close() aborted the reservation
        if (!s.ok()) {
          ctx_->metrics->OneSidedTransfer(transport::KindName(remote_->kind()), "pull", false);
          ctx_->store->Abort(std::move(*reservation_));
          reservation_.reset();
          spdlog::warn("connection {} from {}: insert could not read the value: {}", id_, peer_,
                       s.message());
          ReplyStatus(
              id, Op::kInsert,
              Status(s.code(), "kvstored could not read the value from the client's memory: " +
                                   s.message() + "; nothing was stored"));
          ReadHeader();
          return;
        }
        XXH3_64bits_update(hash_.get(), piece.data(), piece.size());
        PullNext(id, src, done_bytes + piece.size());
      });
}

void Connection::PushDelivery(uint64_t id, Op op, std::unique_ptr<Delivery> d) {
  auto it = push_targets_.find(id);
  const std::vector<PushTarget>& targets = it->second;
  for (size_t i = 0; i < d->entries().size(); ++i) {
    if (d->entries()[i].bytes.size() > targets[i].length) {
      uint64_t have = targets[i].length;
      uint64_t need = d->entries()[i].bytes.size();
      push_targets_.erase(it);
      d->Finish(false);
      ReplyStatus(id, op,
                  Status::InvalidArgument("destination " + std::to_string(i) + " holds " +
                                          std::to_string(have) + " bytes but the value has " +
                                          std::to_string(need) +
                                          "; nothing was written and the entries stay stored"));
      return;
    }
  }
  PushNext(id, op, std::shared_ptr<Delivery>(std::move(d)), 0);
}

void Connection::PushNext(uint64_t id, Op op, std::shared_ptr<Delivery> d, size_t i) {
  if (closed_) return;  // the Delivery hands the entries back as it is destroyed
  auto it = push_targets_.find(id);
  if (i == d->entries().size()) {
    push_targets_.erase(it);
    if (d->drop() && PeerClosed(socket_.native_handle())) {
      // The bytes landed in memory the store still maps, but the client is
      // gone and will never read them: they stay for the next taker.
      d->Finish(false);
      Close(
          "client closed the connection before its drop_select was answered; "
          "the entries stay stored for the next taker");
      return;
    }
    ctx_->metrics->AddBytesOut(d->total_bytes());
    d->Finish(true);  // every byte has landed: a drop_select's entries leave the store now
    ReplyEntries(id, op, *d, nullptr);  // the values are already in the client's memory
    return;
  }
  const DeliveredEntry& e = d->entries()[i];
  if (e.bytes.empty()) {
    PushNext(id, op, std::move(d), i + 1);
    return;
  }
  remote_->Write(e.bytes, it->second[i].range,
                 [this, self = shared_from_this(), id, op, d, i](Status s) mutable {
                   if (closed_) return;
                   ctx_->metrics->OneSidedTransfer(transport::KindName(remote_->kind()), "push",
                                                   s.ok());
                   if (!s.ok()) {
                     push_targets_.erase(id);
                     d->Finish(false);  // drop_select: the entries stay for the next taker
                     spdlog::warn("connection {} from {}: {} could not write value {}: {}", id_,
                                  peer_, OpName(op), i, s.message());
                     ReplyStatus(id, op,
                                 Status(s.code(),
                                        "kvstored could not write the values into the "
                                        "client's memory: " +
                                            s.message() + "; the entries stay stored"));
                     return;
                   }
                   PushNext(id, op, std::move(d), i + 1);
                 });
}

}  // namespace kvstore::server
