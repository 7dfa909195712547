#include "entry_pool.h"

#include <sys/mman.h>

#include <algorithm>
#include <cassert>
#include <new>

namespace kvstore::server {

EntryPool::EntryPool(uint32_t max_entries) : max_entries_(max_entries) {
  void* p = mmap(nullptr, static_cast<size_t>(max_entries_) * sizeof(Entry), PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  base_ = static_cast<Entry*>(p);
}

EntryPool::~EntryPool() { munmap(base_, static_cast<size_t>(max_entries_) * sizeof(Entry)); }

Entry* EntryPool::New(const Entry& init) {
  uint32_t id = free_head_;
  if (id != 0) {
    free_head_ = base_[id].lru_next;
  } else {
    if (next_ >= max_entries_) return nullptr;
    if (next_ == usable_ || usable_ == 0) {
      // Page-aligned boundaries: the range starts page-aligned and a chunk's
      // bytes (kChunkEntries * 88) are a multiple of 4096.
      static_assert(kChunkEntries * sizeof(Entry) % 4096 == 0);
      const uint32_t grow = std::min(kChunkEntries, max_entries_ - usable_);
      if (grow == 0) return nullptr;
      if (mprotect(reinterpret_cast<char*>(base_ + usable_), grow * sizeof(Entry),
                   PROT_READ | PROT_WRITE) != 0) {
        return nullptr;
      }
      usable_ += grow;
    }
    id = next_++;
  }
  ++live_;
  return new (base_ + id) Entry(init);
}

void EntryPool::Delete(Entry* e) {
  assert(e > base_ && e < base_ + next_);
  const uint32_t id = IdOf(e);
  e->~Entry();
  Entry* slot = new (e) Entry();
  slot->lru_next = free_head_;
  free_head_ = id;
  --live_;
}

}  // namespace kvstore::server
