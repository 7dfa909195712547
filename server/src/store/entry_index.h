// The Store's index: (namespace, key) -> Entry*, an open-addressing table of
// pointers (8 bytes a slot at most 3/4 full: ~11 bytes an entry, against ~90
// for a node-based map) probed linearly from the keyed hash of ns_key.h.
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

namespace kvstore::server {

class EntryIndex {
 public:
  EntryIndex();
  Entry* Find(NamespaceId ns, const Key& key);
  bool Contains(NamespaceId ns, const Key& key) { return Find(ns, key) != nullptr; }
  // REQUIRES: no entry with e's (ns, key) is in the index.
  void Insert(Entry* e);
  // REQUIRES: `e` is in the index.
  void Erase(Entry* e);
  size_t size() const { return size_; }
  // Calls fn for every entry (order unspecified). REQUIRES: fn does not change the index.
  void ForEach(const std::function<void(Entry*)>& fn) const;
  // The longest run of occupied slots a lookup could walk (index health).
  size_t LongestProbe() const;
  // Bytes the tables take (for the per-entry cost in stats).
  size_t memory_bytes() const { return (cur_.size() + old_.size()) * sizeof(Entry*); }

 private:
  static constexpr size_t kMigrateStep = 64;  // old slots moved per call while growing
  static Entry* Tombstone() { return reinterpret_cast<Entry*>(uintptr_t{1}); }
  static bool Live(const Entry* p) { return p != nullptr && p != Tombstone(); }

  // Slot of (ns, key) in `t`, or npos.
  static size_t Lookup(const std::vector<Entry*>& t, NamespaceId ns, const Key& key, uint64_t h);
  static void Place(std::vector<Entry*>& t, Entry* e, uint64_t h);
  void MigrateSome();
  void MaybeGrow();

  std::vector<Entry*> cur_;
  std::vector<Entry*> old_;  // being emptied into cur_ (empty when not growing)
  size_t migrate_pos_ = 0;   // old_ slots before this are moved
  size_t size_ = 0;          // live entries in both tables
  size_t cur_used_ = 0;      // live + tombstones in cur_
  size_t old_live_ = 0;      // live entries still in old_
};

}  // namespace kvstore::server
