// An intrusive doubly linked list of pooled Entries through two 32-bit id
// members of the Entry: no node allocation, O(1) push, erase and
// move-to-front. Private to the Store's sources; not synchronized (the
// Store's mutex guards it).
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>

#include "entry.h"
#include "entry_pool.h"

namespace kvstore::server {

template <uint32_t Entry::*Prev, uint32_t Entry::*Next>
class EntryList {
 public:
  // `pool` is borrowed: it holds every entry of the list and outlives it.
  explicit EntryList(const EntryPool* pool) : pool_(pool) {}
  bool empty() const { return head_ == 0; }
  size_t size() const { return size_; }
  Entry* front() const { return pool_->Get(head_); }
  Entry* back() const { return pool_->Get(tail_); }
  // Toward the front (newer, for an LRU); nullptr past the front.
  Entry* Before(const Entry* e) const { return pool_->Get(e->*Prev); }

  void PushFront(Entry* e) {
    const uint32_t id = pool_->IdOf(e);
    e->*Prev = 0;
    e->*Next = head_;
    if (head_ != 0) pool_->Get(head_)->*Prev = id;
    head_ = id;
    if (tail_ == 0) tail_ = id;
    ++size_;
  }
  // REQUIRES: `e` is in this list.
  void Erase(Entry* e) {
    assert(size_ > 0);
    if (e->*Prev != 0) {
      pool_->Get(e->*Prev)->*Next = e->*Next;
    } else {
      head_ = e->*Next;
    }
    if (e->*Next != 0) {
      pool_->Get(e->*Next)->*Prev = e->*Prev;
    } else {
      tail_ = e->*Prev;
    }
    e->*Prev = e->*Next = 0;
    --size_;
  }
  void MoveToFront(Entry* e) {
    if (head_ == pool_->IdOf(e)) return;
    Erase(e);
    PushFront(e);
  }

 private:
  const EntryPool* pool_;
  uint32_t head_ = 0;
  uint32_t tail_ = 0;
  size_t size_ = 0;
};

using LruList = EntryList<&Entry::lru_prev, &Entry::lru_next>;

}  // namespace kvstore::server
