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

void Connection::HandleInsertMany(uint64_t id, wire::InsertManyRequest::Reader r,
                                  uint64_t bulk_len) {
  auto refuse = [this, id, bulk_len](Status s) {
    DrainBulk(bulk_len, [this, id, s = std::move(s)] {
      ReplyStatus(id, Op::kInsertMany, s);
      ReadHeader();
    });
  };
  auto items = r.getItems();
  if (Status s = CheckKeyCount(items.size(), Op::kInsertMany); !s.ok()) {
    refuse(s);
    return;
  }
  std::vector<Key> keys;
  std::vector<EntryMeta> metas;
  std::vector<std::optional<transport::RemoteRange>> sources(items.size());
  keys.reserve(items.size());
  metas.reserve(items.size());
  const uint64_t max_value = ctx_->options->store.max_value_bytes;
  uint64_t total = 0;   // value bytes the frame must carry
  uint64_t pulled = 0;  // value bytes the store pulls
  bool over = false;    // pulled values alone exceed max_value
  for (unsigned i = 0; i < items.size(); ++i) {
    auto key = KeyFromWire(items[i].getKey());
    if (!key.ok()) {
      ctx_->metrics->ProtocolError("bad_key");
      refuse(Status(key.status().code(), "insert_many item " + std::to_string(i) + ": " +
                                             key.status().message() + "; nothing was stored"));
      return;
    }
    keys.push_back(*key);
    metas.push_back(MetaFromWire(items[i].getMeta()));
    if (items[i].hasSource() && items[i].getSource().getLength() > 0) {
      // Every source is checked before anything is reserved, as a single pull is.
      auto source = ResolvePullSource(items[i].getSource(), metas.back().size);
      if (!source.ok()) {
        refuse(Status(source.status().code(), "insert_many item " + std::to_string(i) + ": " +
                                                  source.status().message() +
                                                  "; nothing was stored"));
        return;
      }
      sources[i] = *source;
      if (metas.back().size > max_value - pulled) over = true;
      if (!over) pulled += metas.back().size;
      continue;
    }
    // Sizes sum beyond the frame (or overflow): checked item by item.
    if (metas.back().size > bulk_len - total) {
      total = bulk_len + 1;
      break;
    }
    total += metas.back().size;
  }
  if (total != bulk_len) {
    ctx_->metrics->ProtocolError("size_mismatch");
    refuse(Status::InvalidArgument(
        "insert_many's " + std::to_string(items.size()) + " items declare " +
        (total > bulk_len ? std::string("more") : std::to_string(total)) +
        " value bytes in the frame but it carries " + std::to_string(bulk_len) +
        "; the values must follow back to back, in item order; nothing was stored"));
    return;
  }
  // Pulled values take slots like values in the frame: the same cap on one request.
  if (over || (pulled > 0 && pulled + bulk_len > max_value)) {
    ctx_->metrics->LimitRefused("value_bytes");
    refuse(Status::InvalidArgument("insert_many's " + std::to_string(items.size()) +
                                   " values total more than --max-value " + FormatSize(max_value) +
                                   "; split the batch; nothing was stored"));
    return;
  }
  InsertBatch batch;
  batch.id = id;
  batch.sizes.reserve(metas.size());
  for (const EntryMeta& m : metas) batch.sizes.push_back(m.size);
  batch.reserved =
      ctx_->store->ReserveMany(keys, metas, std::chrono::milliseconds(r.getTtlMs()), StoreNs());
  for (auto& res : batch.reserved) {
    if (!res.ok()) res = NameNamespace(res.status());
  }
  batch.computed.resize(metas.size());
  batch.sources = std::move(sources);
  batch_ = std::move(batch);
  if (bulk_len + pulled > 0) ArmInsertDeadline(id, bulk_len + pulled, Op::kInsertMany);
  ReadBatchNext();
}

void Connection::ReadBatchNext() {
  InsertBatch& b = *batch_;
  // Items with no bytes on the wire, and pulls that complete inline, continue
  // here rather than through a chain of completions.
  while (b.next < b.sizes.size()) {
    const size_t i = b.next++;
    auto& res = b.reserved[i];
    const bool wanted = res.ok() && !res->exists;
    if (b.sizes[i] == 0) {
      if (wanted) b.computed[i] = XXH3_64bits(nullptr, 0);
      continue;
    }
    if (b.sources[i]) {  // nothing of it on the socket
      if (!wanted) continue;
      XXH3_64bits_reset(hash_.get());
      if (PullBatchItem(i, *b.sources[i], 0)) continue;
      return;  // its completion carries on
    }
    if (!wanted) {
      DrainBulk(b.sizes[i], [this] { ReadBatchNext(); });
      return;
    }
    XXH3_64bits_reset(hash_.get());
    ReadBulk(res->bytes(), [this, i] {
      batch_->computed[i] = XXH3_64bits_digest(hash_.get());
      ReadBatchNext();
    });
    return;
  }
  FinishInsertMany();
}

void Connection::FinishInsertMany() {
  DisarmInsertDeadline();
  InsertBatch b = std::move(*batch_);
  batch_.reset();
  // Commit every reserved value together; the rest already have their answer.
  std::vector<Reservation> pending;
  std::vector<std::optional<uint64_t>> checksums;
  std::vector<size_t> index;
  for (size_t i = 0; i < b.reserved.size(); ++i) {
    if (!b.reserved[i].ok() || b.reserved[i]->exists) continue;
    pending.push_back(std::move(*b.reserved[i]));
    checksums.push_back(b.computed[i]);
    index.push_back(i);
  }
  std::vector<Result<bool>> committed = ctx_->store->CommitMany(pending, checksums);
  std::vector<Result<bool>> results;
  results.reserve(b.reserved.size());
  for (auto& r : b.reserved) {
    if (!r.ok()) {
      results.push_back(r.status());
    } else {
      results.push_back(false);  // already present, unless committed below
    }
  }
  for (size_t j = 0; j < index.size(); ++j) results[index[j]] = std::move(committed[j]);
  size_t failed = 0;
  for (const auto& r : results) failed += r.ok() ? 0 : 1;
  if (failed > 0) {
    spdlog::debug("connection {} from {}: insert_many stored {} of {} items; {} refused", id_,
                  peer_, results.size() - failed, results.size(), failed);
  }
  Reply(b.id, Op::kInsertMany, Status::Ok(), [&results](wire::Response::Builder resp) {
    auto out = resp.initInsertResults(static_cast<unsigned>(results.size()));
    for (size_t i = 0; i < results.size(); ++i) {
      auto o = out[static_cast<unsigned>(i)];
      if (results[i].ok()) {
        o.setCode(wire::Code::OK);
        o.setStored(*results[i]);
      } else {
        o.setCode(CodeToWire(results[i].status().code()));
        o.setMessage(results[i].status().message());
      }
    }
  });
  ReadHeader();
}

void Connection::ArmInsertDeadline(uint64_t id, uint64_t size, Op op) {
  const uint64_t rate = ctx_->options->min_insert_rate;
  if (rate == 0) return;  // the stall timer alone bounds it
  const auto stall = ctx_->options->stall_timeout;
  const auto limit =
      stall + std::chrono::milliseconds(size / rate * 1000 + size % rate * 1000 / rate);
  insert_deadline_ = {id, size, limit, op, SteadyClock::now() + limit, true};
  // One timer, moved only when it fires (an earlier insert's deadline): an
  // insert costs no timer call.
  if (!insert_timer_armed_) ArmInsertTimer(insert_deadline_.at);
}

void Connection::ArmInsertTimer(SteadyClock::time_point at) {
  insert_timer_armed_ = true;
  insert_timer_.expires_at(at);
  insert_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    self->insert_timer_armed_ = false;
    const InsertDeadline d = self->insert_deadline_;
    if (ec || !d.active || self->closed_ || (!self->reservation_ && !self->batch_)) return;
    if (SteadyClock::now() < d.at) {
      self->ArmInsertTimer(d.at);
      return;
    }
    const auto stall = self->ctx_->options->stall_timeout;
    const uint64_t size = d.size;
    const auto limit = d.limit;
    self->ctx_->metrics->ProtocolError("insert_too_slow");
    const std::string rate = FormatSize(self->ctx_->options->min_insert_rate) + "/s";
    self->ctx_->log_limit->Warn(
        "insert_too_slow",
        "connection {} from {}: insert of {} not in after {} ms (--stall-timeout {} ms + size / "
        "--min-insert-rate {}); closing it and freeing its reservation",
        self->id_, self->peer_, FormatSize(size), limit.count(), stall.count(), rate);
    self->CloseWithReply(
        d.id, d.op,
        Status::Timeout("insert of " + FormatSize(size) + " did not arrive within " +
                        std::to_string(limit.count()) + " ms (--stall-timeout + size / " +
                        "--min-insert-rate " + rate +
                        "); nothing was stored and the connection is closed: send faster, or "
                        "ask the operator to lower --min-insert-rate"),
        "insert slower than --min-insert-rate");
  });
}

void Connection::DisarmInsertDeadline() { insert_deadline_.active = false; }

}  // namespace kvstore::server
