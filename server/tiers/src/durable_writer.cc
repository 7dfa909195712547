#include "kvstore/tiers/durable_writer.h"

#include <spdlog/spdlog.h>

namespace kvstore::tiers {

Status DurableWriter::Write(const SpillKey& key, const EntryMeta& meta,
                            std::span<const std::byte> value) {
  Status s = spill_->Put(key, meta, value);
  uint64_t ticket = 0;
  if (s.ok()) {
    std::lock_guard lock(mu_);
    ticket = ++written_;
  }
  if (s.ok()) s = SyncThrough(ticket);
  std::lock_guard lock(mu_);
  if (s.ok()) {
    ++stats_.writes;
    return s;
  }
  ++stats_.failed;
  if (ticket != 0) {
    // Written but not made durable: not acknowledged, so it must not come back
    // after a restart either.
    Status d = spill_->Delete(key);
    if (!d.ok() && d.code() != StatusCode::kNotFound) {
      spdlog::warn("durable write: could not delete the unsynced value again: {}", d.ToString());
    }
  }
  return s.WithContext("durable write-through to the spill tier");
}

Status DurableWriter::SyncThrough(uint64_t ticket) {
  std::unique_lock lock(mu_);
  while (attempted_ < ticket) {
    if (flushing_) {
      cv_.wait(lock);
      continue;
    }
    // Lead a group: one Flush for every write finished so far.
    flushing_ = true;
    const uint64_t through = written_;
    lock.unlock();
    Status s = spill_->Flush();
    lock.lock();
    flushing_ = false;
    ++stats_.flushes;
    attempted_ = through;
    if (s.ok()) {
      synced_ = through;
    } else {
      last_error_ = s;
    }
    cv_.notify_all();
  }
  return synced_ >= ticket ? Status::Ok() : last_error_;
}

DurableWriter::Stats DurableWriter::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace kvstore::tiers
