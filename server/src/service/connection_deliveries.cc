// select and drop_select on a connection: waiting for keys (with the
// per-connection, per-namespace and global caps on waiters), delivering the
// entries, and the acknowledgements that let a drop_select's entries go.
#include <spdlog/spdlog.h>

#include "connection.h"

namespace kvstore::server {

namespace {

// What a waiting drop_select holds per key it names (its key lists in the
// connection and the store's waiter index): 65,536 keys cost about 2.8 MiB.
constexpr uint64_t kWaitingKeyBytes = 48;

}  // namespace

void Connection::HandleSelect(uint64_t id, wire::SelectRequest::Reader r, bool drop) {
  Op op = drop ? Op::kDropSelect : Op::kSelect;
  auto keys = ParseKeys(r.getKeys(), op);
  if (!keys.ok()) {
    ctx_->metrics->ProtocolError("bad_key");
    ReplyStatus(id, op, keys.status());
    return;
  }
  if (keys->empty()) {
    ReplyStatus(id, op, Status::InvalidArgument("select names no keys"));
    return;
  }
  std::optional<std::vector<PushTarget>> push;  // one-sided: where each value goes
  if (r.getDestinations().size() > 0) {
    if (r.getDestinations().size() != keys->size() || push_targets_.contains(id)) {
      ReplyStatus(id, op,
                  Status::InvalidArgument(
                      push_targets_.contains(id)
                          ? "request id " + std::to_string(id) + " is already in flight"
                          : "select names " + std::to_string(keys->size()) + " keys but " +
                                std::to_string(r.getDestinations().size()) + " destinations"));
      return;
    }
    push.emplace();
    for (auto b : r.getDestinations()) {
      auto addr = ResolveRemote(b);
      if (!addr.ok()) {
        ReplyStatus(id, op, addr.status());
        return;
      }
      push->push_back({std::move(*addr), b.getLength()});
    }
  }
  std::weak_ptr<Connection> weak = weak_from_this();
  auto callback = [weak, strand = strand_, id, op](Result<std::unique_ptr<Delivery>> result) {
    auto self = weak.lock();
    if (!self) return;  // the Delivery's destructor hands the entries back
    // Inline when already on this connection's strand (resolved at once); posted
    // when another connection's insert resolved it.
    asio::dispatch(strand, [self, id, op,
                            result = std::make_shared<Result<std::unique_ptr<Delivery>>>(
                                std::move(result))]() mutable {
      self->OnDelivery(id, op, std::move(*result));
    });
  };
  if (!drop) {
    frame_started_ = SteadyClock::now();
    if (push) push_targets_[id] = std::move(*push);
    ctx_->store->Select(*keys, callback, StoreNs());
    return;
  }
  if (Status q = CheckWaiterQuota(); !q.ok()) {
    ctx_->metrics->QuotaRefused(ctx_->credentials->NamespaceName(ns_), "waiters");
    ReplyStatus(id, op, q);
    return;
  }
  if (waits_.size() >= ctx_->options->max_waiters_per_connection || waits_.contains(id)) {
    ReplyStatus(
        id, op,
        Status::ResourceExhausted(waits_.contains(id)
                                      ? "request id " + std::to_string(id) + " is already waiting"
                                      : "too many drop_select calls waiting on this connection (" +
                                            std::to_string(waits_.size()) + ")"));
    return;
  }
  const size_t max_waiters = ctx_->options->max_waiters;
  if (max_waiters != 0 && ctx_->waiters.load() >= max_waiters) {
    ctx_->metrics->LimitRefused("waiters");
    ReplyStatus(id, op,
                Status::ResourceExhausted(
                    "kvstored already has " + std::to_string(max_waiters) +
                    " drop_select calls waiting across all connections, its limit "
                    "(--max-waiters); retry once some are served, or raise --max-waiters"));
    return;
  }
  const uint64_t key_bytes = keys->size() * kWaitingKeyBytes;
  if (Status s = CheckPendingBytes(
          key_bytes, "a waiting drop_select of " + std::to_string(keys->size()) + " keys");
      !s.ok()) {
    ReplyStatus(id, op, s);
    return;
  }
  if (push) push_targets_[id] = std::move(*push);
  PendingWait& w = waits_[id];
  w.started = SteadyClock::now();
  w.waiter = PendingCharge(&ctx_->waiters, 1);
  w.bytes = PendingCharge(&ctx_->pending_bytes, key_bytes);
  ctx_->usage->waiters[ns_].fetch_add(1);
  uint64_t waiter = ctx_->store->DropSelect(*keys, callback, StoreNs());
  if (waiter == 0) return;  // resolved at once; OnDelivery will erase the entry
  w.waiter_id = waiter;
  auto timeout = std::chrono::milliseconds(r.getTimeoutMs());
  w.timer = std::make_unique<asio::steady_timer>(strand_);
  w.timer->expires_after(timeout);
  w.timer->async_wait([self = shared_from_this(), id](boost::system::error_code ec) {
    if (!ec) self->OnWaitTimeout(id);
  });
}

void Connection::OnWaitTimeout(uint64_t id) {
  auto it = waits_.find(id);
  if (it == waits_.end() || closed_) return;
  if (!ctx_->store->CancelWaiter(it->second.waiter_id)) return;  // delivery is on its way
  double waited = SecondsSince(it->second.started);
  waits_.erase(it);
  ctx_->usage->waiters[ns_].fetch_sub(1);
  push_targets_.erase(id);
  ctx_->metrics->ObserveWait(waited);
  ReplyStatus(
      id, Op::kDropSelect,
      Status::Timeout("drop_select waited " + std::to_string(static_cast<int64_t>(waited * 1000)) +
                      " ms and its keys were not all inserted; the producer may be slow "
                      "or gone: recompute, or retry with a longer timeout"));
}

void Connection::OnDelivery(uint64_t id, Op op, Result<std::unique_ptr<Delivery>> result) {
  if (op == Op::kDropSelect) {
    auto it = waits_.find(id);
    if (it != waits_.end()) {
      if (it->second.timer) it->second.timer->cancel();
      ctx_->metrics->ObserveWait(SecondsSince(it->second.started));
      waits_.erase(it);
      ctx_->usage->waiters[ns_].fetch_sub(1);
    }
  }
  if (closed_) return;  // the Delivery goes back to the store as it is destroyed
  if (!result.ok()) {
    push_targets_.erase(id);
    ReplyStatus(id, op, result.status());
    return;
  }
  std::unique_ptr<Delivery> d = std::move(result).value();
  if (push_targets_.contains(id)) {
    PushDelivery(id, op, std::move(d));
    return;
  }
  const Delivery& entries = *d;
  ReplyEntries(id, op, entries, std::move(d));
}

void Connection::HandleAck(uint64_t request_id) {
  auto it = unacked_.find(request_id);
  if (it == unacked_.end()) {
    ctx_->metrics->ProtocolError("unknown_ack");
    return;
  }
  it->second.delivery->Finish(true);
  ctx_->metrics->CountRequest(Op::kAck, StatusCode::kOk, SecondsSince(it->second.started));
  unacked_.erase(it);
  MaybeFinishShutdown();
}

}  // namespace kvstore::server
