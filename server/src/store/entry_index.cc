#include "entry_index.h"

#include <sys/mman.h>

#include <algorithm>
#include <cassert>
#include <new>
#include <utility>

namespace kvstore::server {
namespace {

constexpr size_t kNpos = static_cast<size_t>(-1);
constexpr size_t kInitialSlots = 1024;

}  // namespace

SlotTable::SlotTable(size_t slots) : size_(slots) {
  if (slots == 0) return;
  void* p = mmap(nullptr, slots * sizeof(uint32_t), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  slots_ = static_cast<uint32_t*>(p);
}

SlotTable::~SlotTable() {
  if (slots_ != nullptr) munmap(slots_, size_ * sizeof(uint32_t));
}

SlotTable::SlotTable(SlotTable&& o) noexcept
    : slots_(std::exchange(o.slots_, nullptr)), size_(std::exchange(o.size_, 0)) {}

SlotTable& SlotTable::operator=(SlotTable&& o) noexcept {
  if (this != &o) {
    SlotTable gone(std::move(*this));
    slots_ = std::exchange(o.slots_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

EntryIndex::EntryIndex(const EntryPool* pool) : pool_(pool), cur_(kInitialSlots) {}

size_t EntryIndex::Lookup(const SlotTable& t, NamespaceId ns, const Key& key, uint64_t h) const {
  if (t.empty()) return kNpos;
  const size_t mask = t.size() - 1;
  for (size_t i = h & mask, n = 0; n < t.size(); i = (i + 1) & mask, ++n) {
    const uint32_t id = t[i];
    if (id == 0) return kNpos;
    if (id == kTombstone) continue;
    const Entry* p = pool_->Get(id);
    if (p->ns == ns && p->key == key) return i;
  }
  return kNpos;
}

void EntryIndex::Place(SlotTable& t, uint32_t id, uint64_t h) {
  const size_t mask = t.size() - 1;
  size_t i = h & mask;
  while (Live(t[i])) i = (i + 1) & mask;
  t[i] = id;
}

Entry* EntryIndex::Find(NamespaceId ns, const Key& key) {
  MigrateSome();
  const uint64_t h = IndexHash(ns, key);
  if (size_t i = Lookup(cur_, ns, key, h); i != kNpos) return pool_->Get(cur_[i]);
  if (size_t i = Lookup(old_, ns, key, h); i != kNpos) return pool_->Get(old_[i]);
  return nullptr;
}

void EntryIndex::Insert(Entry* e) {
  MaybeGrow();
  const uint64_t h = IndexHash(e->ns, e->key);
  const size_t mask = cur_.size() - 1;
  size_t i = h & mask;
  while (Live(cur_[i])) i = (i + 1) & mask;
  if (cur_[i] == 0) ++cur_used_;  // a tombstone reused keeps the count
  cur_[i] = pool_->IdOf(e);
  ++size_;
  MigrateSome();
}

void EntryIndex::Erase(Entry* e) {
  const uint64_t h = IndexHash(e->ns, e->key);
  const uint32_t id = pool_->IdOf(e);
  if (size_t i = Lookup(cur_, e->ns, e->key, h); i != kNpos && cur_[i] == id) {
    cur_[i] = kTombstone;
  } else {
    i = Lookup(old_, e->ns, e->key, h);
    assert(i != kNpos && old_[i] == id);
    old_[i] = kTombstone;
    --old_live_;
  }
  --size_;
  MigrateSome();
}

void EntryIndex::MigrateSome() {
  if (old_.empty()) return;
  const size_t end = std::min(old_.size(), migrate_pos_ + kMigrateStep);
  for (; migrate_pos_ < end; ++migrate_pos_) {
    const uint32_t id = old_[migrate_pos_];
    old_[migrate_pos_] = 0;
    if (!Live(id)) continue;
    const Entry* p = pool_->Get(id);
    Place(cur_, id, IndexHash(p->ns, p->key));
    ++cur_used_;
    --old_live_;
  }
  if (migrate_pos_ == old_.size()) {
    assert(old_live_ == 0);
    old_ = SlotTable();
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
  old_ = std::move(cur_);
  cur_ = SlotTable(slots);
  ++generation_;
  cur_used_ = 0;
  old_live_ = live_in_cur;
  migrate_pos_ = 0;
}

void EntryIndex::ForEach(const std::function<void(Entry*)>& fn) const {
  for (uint32_t id : cur_) {
    if (Live(id)) fn(pool_->Get(id));
  }
  for (size_t i = migrate_pos_; i < old_.size(); ++i) {
    if (Live(old_[i])) fn(pool_->Get(old_[i]));
  }
}

bool EntryIndex::WalkSome(WalkPos* pos, size_t max_slots,
                          const std::function<void(Entry*)>& fn) const {
  // old_ before cur_: within one generation entries only move from old_ to
  // cur_, and never within cur_, so none slips behind the walk.
  if (pos->generation != generation_) *pos = WalkPos{generation_, true, 0};
  for (size_t n = 0; n < max_slots;) {
    const SlotTable& t = pos->in_old ? old_ : cur_;
    if (pos->in_old && pos->slot < migrate_pos_) pos->slot = migrate_pos_;  // moved out already
    if (pos->slot >= t.size()) {
      if (!pos->in_old) return false;
      *pos = WalkPos{generation_, false, 0};
      continue;
    }
    if (Live(t[pos->slot])) fn(pool_->Get(t[pos->slot]));
    ++pos->slot;
    ++n;
  }
  return true;
}

size_t EntryIndex::LongestProbe() const {
  size_t longest = 0;
  for (const auto* t : {&cur_, &old_}) {
    size_t run = 0;
    for (uint32_t id : *t) {
      run = id == 0 ? 0 : run + 1;
      longest = std::max(longest, run);
    }
  }
  return longest;
}

}  // namespace kvstore::server
