#include "entry_index.h"

#include <algorithm>
#include <cassert>

namespace kvstore::server {
namespace {

constexpr size_t kNpos = static_cast<size_t>(-1);
constexpr size_t kInitialSlots = 1024;

}  // namespace

EntryIndex::EntryIndex() : cur_(kInitialSlots, nullptr) {}

size_t EntryIndex::Lookup(const std::vector<Entry*>& t, NamespaceId ns, const Key& key,
                          uint64_t h) {
  if (t.empty()) return kNpos;
  const size_t mask = t.size() - 1;
  for (size_t i = h & mask, n = 0; n < t.size(); i = (i + 1) & mask, ++n) {
    Entry* p = t[i];
    if (p == nullptr) return kNpos;
    if (p != Tombstone() && p->ns == ns && p->key == key) return i;
  }
  return kNpos;
}

void EntryIndex::Place(std::vector<Entry*>& t, Entry* e, uint64_t h) {
  const size_t mask = t.size() - 1;
  size_t i = h & mask;
  while (Live(t[i])) i = (i + 1) & mask;
  t[i] = e;
}

Entry* EntryIndex::Find(NamespaceId ns, const Key& key) {
  MigrateSome();
  const uint64_t h = IndexHash(ns, key);
  if (size_t i = Lookup(cur_, ns, key, h); i != kNpos) return cur_[i];
  if (size_t i = Lookup(old_, ns, key, h); i != kNpos) return old_[i];
  return nullptr;
}

void EntryIndex::Insert(Entry* e) {
  MaybeGrow();
  const uint64_t h = IndexHash(e->ns, e->key);
  const size_t mask = cur_.size() - 1;
  size_t i = h & mask;
  while (Live(cur_[i])) i = (i + 1) & mask;
  if (cur_[i] == nullptr) ++cur_used_;  // a tombstone reused keeps the count
  cur_[i] = e;
  ++size_;
  MigrateSome();
}

void EntryIndex::Erase(Entry* e) {
  const uint64_t h = IndexHash(e->ns, e->key);
  if (size_t i = Lookup(cur_, e->ns, e->key, h); i != kNpos && cur_[i] == e) {
    cur_[i] = Tombstone();
  } else {
    i = Lookup(old_, e->ns, e->key, h);
    assert(i != kNpos && old_[i] == e);
    old_[i] = Tombstone();
    --old_live_;
  }
  --size_;
  MigrateSome();
}

void EntryIndex::MigrateSome() {
  if (old_.empty()) return;
  const size_t end = std::min(old_.size(), migrate_pos_ + kMigrateStep);
  for (; migrate_pos_ < end; ++migrate_pos_) {
    Entry* p = old_[migrate_pos_];
    old_[migrate_pos_] = nullptr;
    if (!Live(p)) continue;
    Place(cur_, p, IndexHash(p->ns, p->key));
    ++cur_used_;
    --old_live_;
  }
  if (migrate_pos_ == old_.size()) {
    assert(old_live_ == 0);
    std::vector<Entry*>().swap(old_);
    migrate_pos_ = 0;
  }
}

void EntryIndex::MaybeGrow() {
  // Room for this insert and for every entry still in old_ at <= 3/4 full.
  if ((cur_used_ + old_live_ + 1) * 4 <= cur_.size() * 3) return;
  // Finish a growth still under way first (rare: the new table is 2x).
  while (!old_.empty()) MigrateSome();
  const size_t live_in_cur = size_;
  // Mostly tombstones: rebuild at this size; otherwise double.
  const size_t slots = live_in_cur * 2 < cur_.size() ? cur_.size() : cur_.size() * 2;
  old_.swap(cur_);
  cur_.assign(slots, nullptr);
  cur_used_ = 0;
  old_live_ = live_in_cur;
  migrate_pos_ = 0;
}

void EntryIndex::ForEach(const std::function<void(Entry*)>& fn) const {
  for (Entry* p : cur_) {
    if (Live(p)) fn(p);
  }
  for (size_t i = migrate_pos_; i < old_.size(); ++i) {
    if (Live(old_[i])) fn(old_[i]);
  }
}

size_t EntryIndex::LongestProbe() const {
  size_t longest = 0;
  for (const auto* t : {&cur_, &old_}) {
    size_t run = 0;
    for (Entry* p : *t) {
      run = p == nullptr ? 0 : run + 1;
      longest = std::max(longest, run);
    }
  }
  return longest;
}

}  // namespace kvstore::server
