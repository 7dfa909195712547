// One tier of the Store (device, host or spill) as an instance: the entries it
// holds in LRU order, how many and their value bytes, the memory behind it (a
// TierMemory) and its watermarks. The Store keeps its tiers top-down (device
// -> host -> spill) and demotes from each tier into the next with one loop
// (tier_mover.cc); a new tier is another instance, not another copy of that
// loop. Private to the Store's sources.
//
// Thread-compatibility: not synchronized; GUARDED_BY(Store::mu_) like the
// entries it links.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "entry.h"
#include "entry_list.h"
#include "kvstore/server/store.h"
#include "kvstore/server/tier_memory.h"
#include "kvstore/tiers/spill_store.h"
#include "kvstore/types.h"

namespace kvstore::server {

class StoreTier {
 public:
  struct Options {
    Tier kind = Tier::kHost;
    // Demotion starts above high * capacity used and stops at low * capacity
    // (the Store passes StoreOptions' watermarks; 1 = never demotes).
    double high_watermark = 1.0;
    double low_watermark = 1.0;
    // Namespace quotas of this tier are checked when entries move in (device,
    // spill); the host tier's are checked when inserts reserve memory.
    bool quota_on_move_in = false;
  };
  // `memory` and `pool` (the Store's entries) are borrowed: they outlive the tier.
  StoreTier(const Options& options, const TierMemory* memory, const EntryPool* pool)
      : options_(options), memory_(memory), lru_(pool) {}

  Tier kind() const { return options_.kind; }
  bool quota_on_move_in() const { return options_.quota_on_move_in; }
  const TierMemory& memory() const { return *memory_; }
  uint64_t entries() const { return entries_; }
  uint64_t value_bytes() const { return value_bytes_; }
  // Least recently used at the back.
  const LruList& lru() const { return lru_; }

  // REQUIRES: `e` is indexed in this tier (e->tier() == kind()).
  void Link(Entry* e) {
    lru_.PushFront(e);
    value_bytes_ += e->size();
    ++entries_;
  }
  // REQUIRES: `e` was linked here.
  void Unlink(Entry* e) {
    lru_.Erase(e);
    value_bytes_ -= e->size();
    --entries_;
  }
  void Touch(Entry* e) { lru_.MoveToFront(e); }

  // The tier this one demotes into; null for the bottom one.
  StoreTier* below() const { return below_; }
  void set_below(StoreTier* below) { below_ = below; }
  // Past its high watermark with a tier below to demote into.
  bool NeedsDemotion() const { return below_ != nullptr && OverHighWatermark(); }

  uint64_t free_bytes() const { return memory_->capacity() - memory_->used(); }
  bool OverHighWatermark() const {
    return static_cast<double>(memory_->used()) >
           options_.high_watermark * static_cast<double>(memory_->capacity());
  }
  // Free bytes the tier has at its high (low) watermark.
  uint64_t FreeAtHighWatermark() const { return FreeAt(options_.high_watermark); }
  uint64_t FreeAtLowWatermark() const { return FreeAt(options_.low_watermark); }

  TierStats Row() const {
    TierStats r;
    r.tier = kind();
    r.entries = entries_;
    r.bytes = value_bytes_;
    r.capacity_bytes = memory_->capacity();
    r.used_bytes = memory_->used();
    return r;
  }

  // After a demotion pass that freed nothing (the tier below full, everything
  // pinned) the worker leaves this tier alone until then instead of spinning.
  std::chrono::steady_clock::time_point demote_not_before{};

 private:
  uint64_t FreeAt(double watermark) const {
    const uint64_t cap = memory_->capacity();
    return cap - static_cast<uint64_t>(watermark * static_cast<double>(cap));
  }

  const Options options_;
  const TierMemory* memory_;
  StoreTier* below_ = nullptr;
  LruList lru_;
  uint64_t value_bytes_ = 0;
  uint64_t entries_ = 0;
};

// A namespace's byte quota in `tier` (0 = unlimited).
inline uint64_t QuotaBytes(const NamespaceQuota& q, Tier tier) {
  switch (tier) {
    case Tier::kDevice:
      return q.device_bytes;
    case Tier::kHost:
      return q.host_bytes;
    case Tier::kSpill:
      return q.spill_bytes;
  }
  return 0;
}

// The order of Stats' tier rows: host first, then spill and device when they exist.
inline constexpr Tier kStatsTierOrder[] = {Tier::kHost, Tier::kSpill, Tier::kDevice};

// The spill tier's disk as a TierMemory: its --spill limit and the bytes of its
// value files.
class SpillTierMemory final : public TierMemory {
 public:
  explicit SpillTierMemory(const tiers::SpillStore* spill) : spill_(spill) {}
  uint64_t capacity() const override { return spill_->Stats().capacity_bytes; }
  uint64_t used() const override { return spill_->Stats().disk_bytes; }
  std::string Describe() const override { return "spill tier on local disk"; }

 private:
  const tiers::SpillStore* spill_;
};

}  // namespace kvstore::server
