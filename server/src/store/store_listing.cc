// What the Store reports: List pages of entries, Stats of every tier, the
// index's health and the start-up description of its memory (see store.h).
#include "kvstore/server/store.h"

#include <algorithm>
#include <iterator>
#include <map>

#include "entry.h"
#include "entry_index.h"
#include "entry_pool.h"
#include "store_tier.h"
#include "ttl_buckets.h"

namespace kvstore::server {

using SteadyClock = std::chrono::steady_clock;

namespace {

// 1 - value bytes / slot bytes: what the allocator's size classes waste.
double Fragmentation(uint64_t value_bytes, uint64_t slot_bytes) {
  return slot_bytes == 0 ? 0.0
                         : 1.0 - static_cast<double>(value_bytes) / static_cast<double>(slot_bytes);
}

uint64_t SecondsSince(SteadyClock::time_point t) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(SteadyClock::now() - t).count());
}

}  // namespace

std::string Store::DescribeMemory() const {
  std::lock_guard lock(mu_);
  return memory_->Describe();
}

std::string Store::DescribeDevice() const {
  std::lock_guard lock(mu_);
  return device_ ? device_->Describe() : std::string();
}

namespace {

// Where an all-namespace listing resumes: 4 bytes of namespace (big endian) then the key.
std::vector<std::byte> AllNamespacesCursor(const NsKey& k) {
  std::vector<std::byte> c(4 + Key::kSize);
  for (int i = 0; i < 4; ++i) c[i] = static_cast<std::byte>(k.ns >> (24 - 8 * i));
  std::copy(k.key.bytes.begin(), k.key.bytes.end(), c.begin() + 4);
  return c;
}

}  // namespace

ListPage Store::List(std::span<const std::byte> cursor, uint32_t limit, int tier,
                     std::span<const std::byte> prefix, NamespaceId ns,
                     std::vector<NamespaceId>* namespaces) {
  if (limit == 0) limit = 1000;
  const bool all = ns == kAllNamespaces;
  // The cursor as an NsKey position: the listing resumes after it. A cursor
  // shorter than a key compares as that key padded with zero bytes.
  std::optional<NsKey> after;
  if (!cursor.empty()) {
    NsKey c{all ? 0 : ns, {}};
    std::span<const std::byte> key_part = cursor;
    if (all && cursor.size() == 4 + Key::kSize) {
      for (int i = 0; i < 4; ++i) c.ns = (c.ns << 8) | static_cast<uint8_t>(cursor[i]);
      key_part = cursor.subspan(4);
    }
    std::copy_n(key_part.begin(), std::min(key_part.size(), Key::kSize), c.key.bytes.begin());
    after = c;
  }
  // The `limit` + 1 smallest matching keys (one more tells there is a next
  // page), gathered in slices of the index walk: the mutex is held for at
  // most kListSliceSlots slots at a time, so inserts and reads interleave
  // with a listing of any size. An entry seen twice by the walk counts once.
  std::map<NsKey, EntryMeta> found;
  EntryIndex::WalkPos pos;
  for (bool more = true; more;) {
    {
      std::lock_guard lock(mu_);
      more = index_->WalkSome(&pos, kListSliceSlots, [&](Entry* e) {
        const NsKey k = e->id();
        if (!all && k.ns != ns) return;
        if (after && !(*after < k)) return;
        auto kb = std::span<const std::byte>(k.key.bytes);
        if (prefix.size() > Key::kSize || !std::equal(prefix.begin(), prefix.end(), kb.begin())) {
          return;
        }
        if (tier >= 0 && static_cast<int>(e->tier()) != tier) return;
        if (found.size() > limit && !(k < found.rbegin()->first)) return;
        found.insert_or_assign(k, MetaLocked(e));
        if (found.size() > limit + 1) found.erase(std::prev(found.end()));
      });
    }
    if (more && slice_hook_for_tests_) slice_hook_for_tests_();
  }
  ListPage page;
  if (found.size() > limit) {
    found.erase(std::prev(found.end()));
    const NsKey& last = found.rbegin()->first;
    if (all) {
      page.next_cursor = AllNamespacesCursor(last);
    } else {
      page.next_cursor.assign(last.key.bytes.begin(), last.key.bytes.end());
    }
  }
  page.entries.reserve(found.size());
  if (namespaces != nullptr) namespaces->clear();
  for (auto& [id, meta] : found) {
    page.entries.push_back({id.key, std::move(meta)});
    if (namespaces != nullptr) namespaces->push_back(id.ns);
  }
  return page;
}

size_t Store::IndexLongestChain() const {
  std::lock_guard lock(mu_);
  size_t longest = 0;
  longest = index_->LongestProbe();
  return longest;
}

Store::IndexMemory Store::IndexMemoryStats() const {
  std::lock_guard lock(mu_);
  IndexMemory m;
  m.entries = pool_->live();
  m.entry_bytes = pool_->memory_bytes();
  m.table_bytes = index_->memory_bytes();
  m.ttl_bytes = ttl_->memory_bytes();
  m.ttl_records = ttl_->records();
  m.count_bytes = counts_->memory_bytes();
  m.string_count = strings_->size();
  return m;
}

StoreStats Store::Stats() {
  StoreStats s;
  {
    std::lock_guard lock(mu_);
    for (Tier kind : kStatsTierOrder) {
      if (const StoreTier* t = TierOf(kind)) s.tiers.push_back(t->Row());
    }
    const TierStats& host = s.tiers.front();
    s.waiters = waiters_.size();
    s.fragmentation = Fragmentation(host.bytes, host.used_bytes);
  }
  s.inserts = counters_.inserts.load();
  s.hits = counters_.hits.load();
  s.misses = counters_.misses.load();
  s.ttl_expired = counters_.ttl_expired.load();
  s.evictions = counters_.evictions.load();
  s.promotions = counters_.promotions.load();
  s.refused_inserts = counters_.refused_inserts.load();
  s.checksum_failures = counters_.checksum_failures.load();
  s.staged_transfers = counters_.staged_transfers.load();
  s.uptime_seconds = SecondsSince(started_);
  return s;
}

StoreStats Store::Stats(NamespaceId ns) {
  if (ns == kAllNamespaces) return Stats();
  StoreStats s;
  std::lock_guard lock(mu_);
  auto found = namespaces_.find(ns);
  const NamespaceState st = found == namespaces_.end() ? NamespaceState{} : found->second;
  const NamespaceUsage u = UsageLocked(ns, st);
  for (Tier kind : kStatsTierOrder) {
    const StoreTier* t = TierOf(kind);
    if (t == nullptr) continue;
    const int i = static_cast<int>(kind);
    TierStats r;
    r.tier = kind;
    r.entries = st.tier_entries[i];
    r.bytes = st.tier_bytes[i];
    const uint64_t quota = QuotaBytes(st.quota, kind);
    r.capacity_bytes = quota != 0 ? quota : t->memory().capacity();
    // Host: the slots its entries take; elsewhere its value bytes.
    r.used_bytes = kind == Tier::kHost ? st.host_slot_bytes : st.tier_bytes[i];
    s.tiers.push_back(r);
  }
  s.waiters = u.waiters;
  s.inserts = u.inserts;
  s.hits = u.hits;
  s.misses = u.misses;
  s.refused_inserts = u.refused_inserts;
  s.ttl_expired = u.ttl_expired;
  s.fragmentation = Fragmentation(u.host_bytes, u.host_slot_bytes);
  s.uptime_seconds = SecondsSince(started_);
  return s;
}

}  // namespace kvstore::server
