// The Store's index: (namespace, key) -> Entry*, an open-addressing table of
// 32-bit entry ids of the EntryPool (4 bytes a slot, between 3/8 and 3/4 full:
// 5.3 to 11 bytes an entry, against ~90 for a node-based map) probed linearly
// from the keyed hash of ns_key.h.
//
// Growth never stalls a caller: when the table passes 3/4 a table of twice
// the size is made and every later call moves a bounded number of slots
// (kMigrateStep) from the old one; lookups look in both until it is empty.
// Erase leaves a tombstone (positions never shift); tombstones go when a
// table is rebuilt, and a table mostly of tombstones is rebuilt at its size.
//
// Thread-compatibility: not synchronized; the Store calls it under its mutex.
// Private to the Store's sources.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "entry.h"
#include "entry_pool.h"

namespace kvstore::server {

// A zero-filled array of index slots in its own anonymous mapping: making one
// of any size costs no memset (the kernel hands out zero pages as they are
// first touched, spread over the migration that fills it), so a growth never
// holds the Store's mutex for the tens of milliseconds a multi-million-slot
// std::vector::assign takes. Move-only; throws std::bad_alloc when the mapping fails.
class SlotTable {
 public:
  SlotTable() = default;
  explicit SlotTable(size_t slots);
  ~SlotTable();
  SlotTable(SlotTable&& o) noexcept;
  SlotTable& operator=(SlotTable&& o) noexcept;
  SlotTable(const SlotTable&) = delete;
  SlotTable& operator=(const SlotTable&) = delete;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  uint32_t& operator[](size_t i) { return slots_[i]; }
  uint32_t operator[](size_t i) const { return slots_[i]; }
  const uint32_t* begin() const { return slots_; }
  const uint32_t* end() const { return slots_ + size_; }

 private:
  uint32_t* slots_ = nullptr;
  size_t size_ = 0;
};

class EntryIndex {
 public:
  // `pool` is borrowed: it holds every indexed entry and outlives the index.
  explicit EntryIndex(const EntryPool* pool);
  Entry* Find(NamespaceId ns, const Key& key);
  bool Contains(NamespaceId ns, const Key& key) { return Find(ns, key) != nullptr; }
  // REQUIRES: no entry with e's (ns, key) is in the index.
  void Insert(Entry* e);
  // REQUIRES: `e` is in the index.
  void Erase(Entry* e);
  size_t size() const { return size_; }
  // Calls fn for every entry (order unspecified). REQUIRES: fn does not change the index.
  void ForEach(const std::function<void(Entry*)>& fn) const;

  // Where a walk in slices (WalkSome) stands; a default one is at the start.
  struct WalkPos {
    uint64_t generation = 0;  // the tables the position is in (0: not started)
    bool in_old = true;       // walking old_ (first), then cur_
    size_t slot = 0;
  };
  // Calls fn for the live entries of at most `max_slots` slots from `pos` on
  // and advances it; false when the walk has ended. The index may change
  // between calls (the caller's lock released): every entry that stays in it
  // from the walk's start to its end is visited at least once, some twice
  // (the walk starts over when the tables were replaced by a growth, and an
  // entry migrated from old_ may be seen in both). REQUIRES: fn does not
  // change the index.
  bool WalkSome(WalkPos* pos, size_t max_slots, const std::function<void(Entry*)>& fn) const;
  // The longest run of occupied slots a lookup could walk (index health).
  size_t LongestProbe() const;
  // Bytes the tables take (for the per-entry cost in stats).
  size_t memory_bytes() const { return (cur_.size() + old_.size()) * sizeof(uint32_t); }

 private:
  static constexpr size_t kMigrateStep = 64;  // old slots moved per call while growing
  // Slot values: 0 empty, kTombstone erased, else an entry id.
  static constexpr uint32_t kTombstone = UINT32_MAX;
  static bool Live(uint32_t id) { return id != 0 && id != kTombstone; }

  // Slot of (ns, key) in `t`, or npos.
  size_t Lookup(const SlotTable& t, NamespaceId ns, const Key& key, uint64_t h) const;
  static void Place(SlotTable& t, uint32_t id, uint64_t h);
  void MigrateSome();
  void MaybeGrow();

  const EntryPool* pool_;
  SlotTable cur_;
  SlotTable old_;            // being emptied into cur_ (empty when not growing)
  size_t migrate_pos_ = 0;   // old_ slots before this are moved
  size_t size_ = 0;          // live entries in both tables
  size_t cur_used_ = 0;      // live + tombstones in cur_
  size_t old_live_ = 0;      // live entries still in old_
  uint64_t generation_ = 1;  // +1 whenever cur_ and old_ are replaced
};

}  // namespace kvstore::server
