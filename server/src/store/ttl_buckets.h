// The Store's TTL expiry buckets: entries with a TTL by expiry bucket
// (kBucketMs wide, counted from the Store's start; Entry::expiry is the bucket
// + 1). An expiry pass takes whole buckets that ended, so it costs what
// expires (and the stale records it drops), never what is stored.
//
// A bucket is a list of entry ids with no link in the entry: an entry that
// leaves the index (taken, removed, claimed by a drop_select) leaves its
// record behind, and a record is honoured only when its entry is still indexed
// with that very bucket, so a stale record, or one whose pooled entry now
// holds another key, expires nothing. A bucket whose live entries all left is
// dropped at once; one whose stale records pass twice its live entries (plus
// kSlack) is compacted then, so records stay O(entries with a TTL) and every
// step is amortized O(1).
//
// Thread-compatibility: not synchronized; GUARDED_BY(Store::mu_). Private to
// the Store's sources.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

#include "entry.h"
#include "entry_pool.h"

namespace kvstore::server {

class TtlBuckets {
 public:
  static constexpr int64_t kBucketMs = 16;
  // `pool` is borrowed: it holds every entry recorded here and outlives this.
  explicit TtlBuckets(const EntryPool* pool) : pool_(pool) {}

  // REQUIRES: `e` was just indexed, e->expiry != 0.
  void Add(Entry* e);
  // REQUIRES: `e` was added and has just left the index (e->indexed false).
  void Left(const Entry* e);
  // The next indexed entry whose expiry bucket is before `now_bucket` (an
  // Entry::expiry <= now_bucket), dropping the records it passes; null when
  // none is left. The caller takes it out of the index (which calls Left)
  // before asking for the next. *examined counts the records looked at.
  Entry* NextExpired(uint32_t now_bucket, size_t* examined);

  size_t records() const { return records_; }
  // Bytes the buckets take: the ids' capacity and a map node each.
  size_t memory_bytes() const { return id_bytes_ + buckets_.size() * kNodeBytes; }

 private:
  struct Bucket {
    std::vector<uint32_t> ids;  // entry ids; some may be stale
    size_t live = 0;            // indexed entries whose expiry is this bucket
  };
  static constexpr size_t kSlack = 16;
  static constexpr size_t kNodeBytes = 32 + sizeof(std::pair<const uint32_t, Bucket>);
  bool Valid(uint32_t id, uint32_t bucket) const {
    const Entry* e = pool_->Get(id);
    return e->indexed && e->expiry == bucket;
  }
  void Compact(uint32_t bucket, Bucket& b);
  void EraseBucket(std::map<uint32_t, Bucket>::iterator it);

  const EntryPool* pool_;
  std::map<uint32_t, Bucket> buckets_;  // by Entry::expiry
  size_t records_ = 0;
  size_t id_bytes_ = 0;
};

}  // namespace kvstore::server
