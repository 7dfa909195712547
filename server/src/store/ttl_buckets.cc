#include "ttl_buckets.h"

#include <algorithm>
#include <cassert>

namespace kvstore::server {

void TtlBuckets::Add(Entry* e) {
  assert(e->expiry != 0 && e->indexed);
  Bucket& b = buckets_[e->expiry];
  const size_t cap = b.ids.capacity();
  b.ids.push_back(pool_->IdOf(e));
  id_bytes_ += (b.ids.capacity() - cap) * sizeof(uint32_t);
  ++b.live;
  ++records_;
}

void TtlBuckets::Left(const Entry* e) {
  auto it = buckets_.find(e->expiry);
  assert(it != buckets_.end() && it->second.live > 0);
  Bucket& b = it->second;
  if (--b.live == 0) {
    EraseBucket(it);  // every record left is stale
  } else if (b.ids.size() > 2 * b.live + kSlack) {
    Compact(it->first, b);
  }
}

void TtlBuckets::Compact(uint32_t bucket, Bucket& b) {
  const size_t before = b.ids.size();
  const size_t cap = b.ids.capacity();
  std::erase_if(b.ids, [&](uint32_t id) { return !Valid(id, bucket); });
  std::sort(b.ids.begin(), b.ids.end());  // an entry put back twice has two records
  b.ids.erase(std::unique(b.ids.begin(), b.ids.end()), b.ids.end());
  assert(b.ids.size() == b.live);
  b.ids.shrink_to_fit();
  records_ -= before - b.ids.size();
  id_bytes_ -= (cap - b.ids.capacity()) * sizeof(uint32_t);
}

void TtlBuckets::EraseBucket(std::map<uint32_t, Bucket>::iterator it) {
  records_ -= it->second.ids.size();
  id_bytes_ -= it->second.ids.capacity() * sizeof(uint32_t);
  buckets_.erase(it);
}

Entry* TtlBuckets::NextExpired(uint32_t now_bucket, size_t* examined) {
  while (!buckets_.empty() && buckets_.begin()->first <= now_bucket) {
    auto it = buckets_.begin();
    Bucket& b = it->second;
    if (b.ids.empty()) {
      EraseBucket(it);
      continue;
    }
    const uint32_t id = b.ids.back();
    b.ids.pop_back();
    --records_;
    ++*examined;
    if (Valid(id, it->first)) return pool_->Get(id);
  }
  return nullptr;
}

}  // namespace kvstore::server
