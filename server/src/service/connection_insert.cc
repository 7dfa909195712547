// Inserts whose value travels in the frame: reserving the slot, reading the
// value into it, committing; and the deadline that follows from the value's
// size and --min-insert-rate. (Inserts the store pulls: connection_one_sided.cc.)
#include <spdlog/spdlog.h>

#include "connection.h"
#include "kvstore/units.h"

namespace kvstore::server {

void Connection::HandleInsert(uint64_t id, wire::InsertRequest::Reader r, uint64_t bulk_len) {
  auto refuse = [this, id, bulk_len](Status s) {
    DrainBulk(bulk_len, [this, id, s = std::move(s)] {
      ReplyStatus(id, Op::kInsert, s);
      ReadHeader();
    });
  };
  auto key = KeyFromWire(r.getKey());
  if (!key.ok()) {
    ctx_->metrics->ProtocolError("bad_key");
    refuse(key.status());
    return;
  }
  EntryMeta meta = MetaFromWire(r.getMeta());
  if (bulk_len == 0 && r.hasSource() && r.getSource().getLength() > 0) {
    pull_checksum_by_store_ = r.getChecksumByStore();
    InsertByPull(id, *key, meta, std::chrono::milliseconds(r.getTtlMs()), r.getSource());
    return;
  }
  const bool trailer = r.getChecksumTrailer();
  const uint64_t trailer_len = trailer ? kChecksumTrailerBytes : 0;
  if (bulk_len < trailer_len || meta.size != bulk_len - trailer_len) {
    ctx_->metrics->ProtocolError("size_mismatch");
    refuse(Status::InvalidArgument("insert declares " + std::to_string(meta.size) + " value bytes" +
                                   (trailer ? " plus an 8-byte checksum trailer" : "") +
                                   " but the frame carries " + std::to_string(bulk_len)));
    return;
  }
  auto res = ctx_->store->Reserve(*key, meta, std::chrono::milliseconds(r.getTtlMs()), StoreNs());
  if (!res.ok()) {
    refuse(NameNamespace(res.status()));
    return;
  }
  if (res->exists) {
    DrainBulk(bulk_len, [this, id] {
      ReplyCount(id, Op::kInsert, 0);
      ReadHeader();
    });
    return;
  }
  reservation_ = std::move(res).value();
  XXH3_64bits_reset(hash_.get());
  ArmInsertDeadline(id, meta.size);
  ReadBulk(reservation_->bytes(), [this, id, trailer] {
    if (trailer) {
      ReadTrailer([this, id](uint64_t checksum) {
        reservation_->meta.checksum = checksum;
        FinishInsert(id);
      });
      return;
    }
    FinishInsert(id);
  });
}

void Connection::FinishInsert(uint64_t id) {
  DisarmInsertDeadline();
  auto committed = ctx_->store->Commit(std::move(*reservation_), XXH3_64bits_digest(hash_.get()));
  reservation_.reset();
  if (!committed.ok()) {
    spdlog::warn("connection {} from {}: insert refused: {}", id_, peer_,
                 committed.status().ToString());
    ReplyStatus(id, Op::kInsert, committed.status());
  } else {
    uint64_t n = *committed ? 1 : 0;
    ReplyCount(id, Op::kInsert, n);
  }
  ReadHeader();
}

void Connection::ArmInsertDeadline(uint64_t id, uint64_t size) {
  const uint64_t rate = ctx_->options->min_insert_rate;
  if (rate == 0) return;  // the stall timer alone bounds it
  const auto stall = ctx_->options->stall_timeout;
  const auto limit =
      stall + std::chrono::milliseconds(size / rate * 1000 + size % rate * 1000 / rate);
  uint64_t gen = ++insert_generation_;
  insert_timer_.expires_after(limit);
  insert_timer_.async_wait([self = shared_from_this(), gen, id, size, limit,
                            stall](boost::system::error_code ec) {
    if (ec || gen != self->insert_generation_ || self->closed_ || !self->reservation_) return;
    self->ctx_->metrics->ProtocolError("insert_too_slow");
    const std::string rate = FormatSize(self->ctx_->options->min_insert_rate) + "/s";
    self->ctx_->log_limit->Warn(
        "insert_too_slow",
        "connection {} from {}: insert of {} not in after {} ms (--stall-timeout {} ms + size / "
        "--min-insert-rate {}); closing it and freeing its reservation",
        self->id_, self->peer_, FormatSize(size), limit.count(), stall.count(), rate);
    self->CloseWithReply(
        id, Op::kInsert,
        Status::Timeout("insert of " + FormatSize(size) + " did not arrive within " +
                        std::to_string(limit.count()) + " ms (--stall-timeout + size / " +
                        "--min-insert-rate " + rate +
                        "); nothing was stored and the connection is closed: send faster, or "
                        "ask the operator to lower --min-insert-rate"),
        "insert slower than --min-insert-rate");
  });
}

void Connection::DisarmInsertDeadline() {
  ++insert_generation_;
  insert_timer_.cancel();
}

}  // namespace kvstore::server
