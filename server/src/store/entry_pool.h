// The Store's entries in one pool: fixed-size Entries in a contiguous,
// reserved range of address space, so an entry id is its index in the range
// (id -> Entry* is one add, Entry* -> id one subtraction) and entries never
// move. The range is reserved (PROT_NONE, no memory) for `max_entries` at
// construction and made usable kChunkEntries at a time as the pool grows;
// freed entries go on a free list (linked through Entry::lru_next) and are
// reused first. Memory once made usable is kept (like a heap's).
//
// Id 0 is never handed out (it means "none" in links and index slots).
//
// Thread-compatibility: not synchronized; the Store calls it under its mutex.
// Private to the Store's sources.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>

#include "entry.h"

namespace kvstore::server {

class EntryPool {
 public:
  static constexpr uint32_t kChunkEntries = 1u << 14;  // 1.4 MB made usable at a time
  static constexpr uint32_t kDefaultMaxEntries = 1u << 28;
  // Reserves address space for `max_entries` (default 2^28, 23.6 GB of
  // address space, no memory). Throws std::bad_alloc when it cannot.
  explicit EntryPool(uint32_t max_entries = kDefaultMaxEntries);
  ~EntryPool();
  EntryPool(const EntryPool&) = delete;
  EntryPool& operator=(const EntryPool&) = delete;

  // A copy of `init` in the pool; null when the pool holds max_entries - 1
  // entries or the system refuses memory for more.
  Entry* New(const Entry& init);
  // REQUIRES: `e` came from New and was not deleted since.
  void Delete(Entry* e);

  Entry* Get(uint32_t id) const { return id == 0 ? nullptr : base_ + id; }
  uint32_t IdOf(const Entry* e) const {
    return e == nullptr ? 0 : static_cast<uint32_t>(e - base_);
  }
  size_t live() const { return live_; }
  // Bytes made usable for entries (what the pool costs in memory).
  size_t memory_bytes() const { return static_cast<size_t>(usable_) * sizeof(Entry); }

 private:
  Entry* base_ = nullptr;
  uint32_t max_entries_;
  uint32_t usable_ = 0;     // entries [0, usable_) are mapped read-write
  uint32_t next_ = 1;       // never handed out from here up
  uint32_t free_head_ = 0;  // the free list, through lru_next
  size_t live_ = 0;
};

// Counts most entries never need, kept beside the pool by entry id: read pins
// (readers of the bytes: select deliveries, tier moves) and takers beyond the
// first (drop_selects that must each get the bytes; the last removes it,
// added by retain). Entry::pinned and Entry::retained say an entry has one, so
// asking about any other costs a bit test. Not synchronized (the Store's mutex).
class EntryCounts {
 public:
  // `pool` is borrowed: it outlives this.
  explicit EntryCounts(const EntryPool* pool) : pool_(pool) {}

  uint32_t pins(const Entry* e) const { return e->pinned ? pins_.at(pool_->IdOf(e)) : 0; }
  void Pin(Entry* e) {
    ++pins_[pool_->IdOf(e)];
    e->pinned = true;
  }
  // REQUIRES: pins(e) > 0.
  void Unpin(Entry* e) { e->pinned = Decrement(pins_, pool_->IdOf(e)); }
  // At least 1.
  uint32_t takers(const Entry* e) const {
    return 1 + (e->retained ? extra_takers_.at(pool_->IdOf(e)) : 0);
  }
  void AddTaker(Entry* e) {
    ++extra_takers_[pool_->IdOf(e)];
    e->retained = true;
  }
  // REQUIRES: takers(e) > 1.
  void DropTaker(Entry* e) { e->retained = Decrement(extra_takers_, pool_->IdOf(e)); }
  // `e` is being freed (no pins left): drops what it has here.
  void Forget(const Entry* e) {
    if (e->retained) extra_takers_.erase(pool_->IdOf(e));
  }
  // About what the two maps take (a node per counted entry and the buckets).
  size_t memory_bytes() const {
    constexpr size_t kNode = 32;  // next pointer, key, count, cached hash
    return (pins_.size() + extra_takers_.size()) * kNode +
           (pins_.bucket_count() + extra_takers_.bucket_count()) * sizeof(void*);
  }

 private:
  using Counts = std::unordered_map<uint32_t, uint32_t>;
  // --counts[id] (REQUIRES > 0), erased at 0; whether any is left.
  static bool Decrement(Counts& counts, uint32_t id) {
    auto it = counts.find(id);
    if (--it->second != 0) return true;
    counts.erase(it);
    return false;
  }

  const EntryPool* pool_;
  std::unordered_map<uint32_t, uint32_t> pins_;          // entry id -> pins (> 0)
  std::unordered_map<uint32_t, uint32_t> extra_takers_;  // entry id -> takers - 1 (> 0)
};

}  // namespace kvstore::server
