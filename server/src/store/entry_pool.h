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

}  // namespace kvstore::server
