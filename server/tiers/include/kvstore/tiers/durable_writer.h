// DurableWriter: writes values through to the spill tier with group commit,
// for the daemon's durable mode (--durability sync): an insert is acknowledged
// only after its value and index record are on the spill tier and a Flush
// (fdatasync of the value segments and sync of the index log) that began after
// its write has completed. Concurrent writers share one Flush: whoever finds
// no Flush running starts one covering every write finished so far; the others
// wait for it (or for the next one, if theirs finished after it began).
//
// What it promises: Write returning OK means the value survives kill -9 of the
// daemon and power loss of the machine (as far as the device honours fdatasync).
//
// Thread-safety: Write may be called from any number of threads at once, for
// different keys (the SpillStore's own rule). The SpillStore outlives this.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <span>

#include "kvstore/status.h"
#include "kvstore/tiers/spill_store.h"

namespace kvstore::tiers {

class DurableWriter {
 public:
  explicit DurableWriter(SpillStore* spill) : spill_(spill) {}
  DurableWriter(const DurableWriter&) = delete;
  DurableWriter& operator=(const DurableWriter&) = delete;

  // Puts the value and waits until a group Flush covers it. On an error nothing
  // is promised and the value is deleted again from the spill tier (best effort);
  // the Status says where it failed (a full spill tier is ResourceExhausted).
  // REQUIRES: as SpillStore::Put.
  Status Write(const SpillKey& key, const EntryMeta& meta, std::span<const std::byte> value);

  struct Stats {
    uint64_t writes = 0;   // Writes that returned OK
    uint64_t flushes = 0;  // group Flushes run (writes / flushes = the mean group size)
    uint64_t failed = 0;   // Writes that returned an error
  };
  Stats stats() const;

 private:
  // Waits until a Flush that began after write `ticket` finished; its Status.
  Status SyncThrough(uint64_t ticket);

  SpillStore* const spill_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t written_ = 0;    // GUARDED_BY(mu_); tickets handed out (writes finished)
  uint64_t attempted_ = 0;  // GUARDED_BY(mu_); every ticket <= this had a Flush finish after it
  uint64_t synced_ = 0;     // GUARDED_BY(mu_); every ticket <= this is durable
  bool flushing_ = false;   // GUARDED_BY(mu_)
  Status last_error_;       // GUARDED_BY(mu_); of the last failed Flush
  Stats stats_;             // GUARDED_BY(mu_)
};

}  // namespace kvstore::tiers
