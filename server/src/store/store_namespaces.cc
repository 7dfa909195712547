// The Store's namespaces (tenants): quotas, per-namespace usage and stats
// (see store.h). Called under the Store's mutex where named ...Locked.
#include <algorithm>

#include "entry.h"
#include "kvstore/server/store.h"

namespace kvstore::server {

using SteadyClock = std::chrono::steady_clock;

Status Store::CheckQuotaLocked(NamespaceId ns, uint64_t bytes) {
  NamespaceState& st = NsLocked(ns);
  const NamespaceQuota& q = st.quota;
  if (q.entries != 0 && st.entries + st.reserved_entries + 1 > q.entries) {
    return Status::ResourceExhausted(
        "namespace " + std::to_string(ns) + " is at its quota of " + std::to_string(q.entries) +
        " entries (" + std::to_string(st.entries) + " stored, " +
        std::to_string(st.reserved_entries) +
        " being inserted); take or remove some of its entries, or raise the namespace's entries "
        "quota");
  }
  const uint64_t host = st.tier_bytes[static_cast<int>(Tier::kHost)] + st.reserved_bytes;
  if (q.host_bytes != 0 && host + bytes > q.host_bytes) {
    return Status::ResourceExhausted(
        "namespace " + std::to_string(ns) + " is at its host-memory quota of " +
        std::to_string(q.host_bytes) + " bytes (" + std::to_string(host) +
        " in use or being inserted, " + std::to_string(bytes) +
        " more asked); take or remove some of its entries, or raise the namespace's host_bytes "
        "quota");
  }
  return Status::Ok();
}

bool Store::TierQuotaAllowsLocked(NamespaceId ns, Tier tier, uint64_t bytes) {
  NamespaceState& st = NsLocked(ns);
  const uint64_t limit = tier == Tier::kDevice
                             ? st.quota.device_bytes
                             : (tier == Tier::kSpill ? st.quota.spill_bytes : st.quota.host_bytes);
  return limit == 0 || st.tier_bytes[static_cast<int>(tier)] + bytes <= limit;
}

void Store::SetNamespaceQuota(NamespaceId ns, const NamespaceQuota& quota) {
  std::lock_guard lock(mu_);
  NsLocked(ns).quota = quota;
}

NamespaceQuota Store::GetNamespaceQuota(NamespaceId ns) const {
  std::lock_guard lock(mu_);
  auto it = namespaces_.find(ns);
  return it == namespaces_.end() ? NamespaceQuota{} : it->second.quota;
}

NamespaceUsage Store::UsageLocked(NamespaceId ns, const NamespaceState& st) const {
  NamespaceUsage u;
  u.ns = ns;
  u.quota = st.quota;
  u.entries = st.entries;
  u.host_bytes = st.tier_bytes[static_cast<int>(Tier::kHost)];
  u.device_bytes = st.tier_bytes[static_cast<int>(Tier::kDevice)];
  u.spill_bytes = st.tier_bytes[static_cast<int>(Tier::kSpill)];
  u.host_slot_bytes = st.host_slot_bytes;
  u.reserved_entries = st.reserved_entries;
  u.reserved_bytes = st.reserved_bytes;
  u.waiters = waiters_.CountIn(ns);
  u.inserts = st.inserts;
  u.refused_inserts = st.refused_inserts;
  u.hits = st.hits;
  u.misses = st.misses;
  u.ttl_expired = st.ttl_expired;
  return u;
}

std::vector<NamespaceUsage> Store::Namespaces() const {
  std::lock_guard lock(mu_);
  std::vector<NamespaceUsage> out;
  out.reserve(namespaces_.size());
  for (const auto& [ns, st] : namespaces_) out.push_back(UsageLocked(ns, st));
  std::sort(out.begin(), out.end(),
            [](const NamespaceUsage& a, const NamespaceUsage& b) { return a.ns < b.ns; });
  return out;
}

NamespaceUsage Store::NamespaceUsageOf(NamespaceId ns) const {
  std::lock_guard lock(mu_);
  auto it = namespaces_.find(ns);
  return UsageLocked(ns, it == namespaces_.end() ? NamespaceState{} : it->second);
}
StoreStats Store::Stats(NamespaceId ns) {
  if (ns == kAllNamespaces) return Stats();
  StoreStats s;
  std::lock_guard lock(mu_);
  auto found = namespaces_.find(ns);
  const NamespaceState st = found == namespaces_.end() ? NamespaceState{} : found->second;
  const NamespaceUsage u = UsageLocked(ns, st);
  auto entries_in = [&](Tier t) { return st.tier_entries[static_cast<int>(t)]; };
  auto row = [](Tier t, uint64_t entries, uint64_t bytes, uint64_t quota, uint64_t capacity,
                uint64_t used) {
    TierStats r;
    r.tier = t;
    r.entries = entries;
    r.bytes = bytes;
    r.capacity_bytes = quota != 0 ? quota : capacity;
    r.used_bytes = used;
    return r;
  };
  s.tiers.push_back(row(Tier::kHost, entries_in(Tier::kHost), u.host_bytes, u.quota.host_bytes,
                        memory_->capacity(), u.host_slot_bytes));
  if (spill_ != nullptr) {
    s.tiers.push_back(row(Tier::kSpill, entries_in(Tier::kSpill), u.spill_bytes,
                          u.quota.spill_bytes, spill_->Stats().capacity_bytes, u.spill_bytes));
  }
  if (device_ != nullptr) {
    s.tiers.push_back(row(Tier::kDevice, entries_in(Tier::kDevice), u.device_bytes,
                          u.quota.device_bytes, device_->capacity(), u.device_bytes));
  }
  s.waiters = u.waiters;
  s.inserts = u.inserts;
  s.hits = u.hits;
  s.misses = u.misses;
  s.refused_inserts = u.refused_inserts;
  s.ttl_expired = u.ttl_expired;
  s.fragmentation = u.host_slot_bytes == 0 ? 0.0
                                           : 1.0 - static_cast<double>(u.host_bytes) /
                                                       static_cast<double>(u.host_slot_bytes);
  s.uptime_seconds = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(SteadyClock::now() - started_).count());
  return s;
}

}  // namespace kvstore::server
