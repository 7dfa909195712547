// An intrusive doubly linked list of Entries through two link members of the
// Entry: no node allocation, O(1) push, erase and move-to-front. Private to
// the Store's sources; not synchronized (the Store's mutex guards it).
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <map>

#include "entry.h"

namespace kvstore::server {

template <Entry* Entry::*Prev, Entry* Entry::*Next>
class EntryList {
 public:
  bool empty() const { return head_ == nullptr; }
  size_t size() const { return size_; }
  Entry* front() const { return head_; }
  Entry* back() const { return tail_; }
  // Toward the front (newer, for an LRU); nullptr past the front.
  static Entry* Before(const Entry* e) { return e->*Prev; }

  void PushFront(Entry* e) {
    e->*Prev = nullptr;
    e->*Next = head_;
    if (head_ != nullptr) head_->*Prev = e;
    head_ = e;
    if (tail_ == nullptr) tail_ = e;
    ++size_;
  }
  // REQUIRES: `e` is in this list.
  void Erase(Entry* e) {
    assert(size_ > 0);
    if (e->*Prev != nullptr) {
      (e->*Prev)->*Next = e->*Next;
    } else {
      head_ = e->*Next;
    }
    if (e->*Next != nullptr) {
      (e->*Next)->*Prev = e->*Prev;
    } else {
      tail_ = e->*Prev;
    }
    e->*Prev = e->*Next = nullptr;
    --size_;
  }
  void MoveToFront(Entry* e) {
    if (head_ == e) return;
    Erase(e);
    PushFront(e);
  }

 private:
  Entry* head_ = nullptr;
  Entry* tail_ = nullptr;
  size_t size_ = 0;
};

using LruList = EntryList<&Entry::lru_prev, &Entry::lru_next>;
using TtlList = EntryList<&Entry::ttl_prev, &Entry::ttl_next>;

// The Store's lists of entries (GUARDED_BY(Store::mu_)).
struct EntryLists {
  LruList host_lru;    // host entries, front = newest
  LruList device_lru;  // device entries, front = newest
  // Entries with a TTL by expiry bucket (kTtlBucketMs wide, counted from the
  // Store's start): an expiry pass takes whole buckets that ended, so it costs
  // what expires, never what is stored.
  static constexpr int64_t kTtlBucketMs = 16;
  std::map<uint64_t, TtlList> ttl_buckets;
};

}  // namespace kvstore::server
