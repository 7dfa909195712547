// The Store's entries: construction of its tiers, inserts (reserve, commit),
// the index and each entry's accounting in its tier, removal and TTL expiry.
// Deliveries are in store_delivery.cc, List and Stats in store_listing.cc,
// tier movement in tier_mover.cc and device_tier.cc (see store.h).
#include "kvstore/server/store.h"

#include <algorithm>
#include <cassert>
#include <cstring>

#include <spdlog/spdlog.h>

#include "entry.h"
#include "entry_index.h"
#include "entry_list.h"
#include "entry_pool.h"
#include "store_tier.h"
#include "ttl_buckets.h"

namespace kvstore::server {

using SteadyClock = std::chrono::steady_clock;

namespace {

uint64_t UnixMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

Store::Store(const StoreOptions& options, std::unique_ptr<HostMemory> memory,
             std::unique_ptr<tiers::SpillStore> spill, std::unique_ptr<DeviceMemory> device)
    : options_(options),
      started_(SteadyClock::now()),
      started_unix_ms_(UnixMs()),
      memory_(std::move(memory)),
      spill_(std::move(spill)),
      device_(std::move(device)),
      pool_(std::make_unique<EntryPool>()),
      counts_(std::make_unique<EntryCounts>(pool_.get())),
      index_(std::make_unique<EntryIndex>(pool_.get())),
      strings_(std::make_unique<StringTable>()),
      ttl_(std::make_unique<TtlBuckets>(pool_.get())),
      durable_(options.durability == Durability::kSync && spill_
                   ? std::make_unique<tiers::DurableWriter>(spill_.get())
                   : nullptr) {
  if (spill_ != nullptr) spill_memory_ = std::make_unique<SpillTierMemory>(spill_.get());
  auto add = [&](Tier kind, const TierMemory* memory, bool quota_on_move_in) {
    if (memory == nullptr) return;
    tiers_.push_back(
        std::make_unique<StoreTier>(StoreTier::Options{.kind = kind,
                                                       .high_watermark = options_.high_watermark,
                                                       .low_watermark = options_.low_watermark,
                                                       .quota_on_move_in = quota_on_move_in},
                                    memory, pool_.get()));
    by_kind_[static_cast<int>(kind)] = tiers_.back().get();
    if (tiers_.size() > 1) tiers_[tiers_.size() - 2]->set_below(tiers_.back().get());
  };
  add(Tier::kDevice, device_.get(), /*quota_on_move_in=*/true);
  add(Tier::kHost, memory_.get(), /*quota_on_move_in=*/false);
  add(Tier::kSpill, spill_memory_.get(), /*quota_on_move_in=*/true);
}

Store::~Store() {
  StopWorker();
  std::lock_guard lock(mu_);
  index_->ForEach([&](Entry* e) {
    if (e->in_host()) memory_->Free(HostSlotLocked(e));
    if (e->in_device()) device_->Free(DeviceSlotLocked(e));
  });
  index_.reset();
}

void Store::LinkLocked(Entry* e) {
  e->indexed = true;
  NamespaceState& ns = NsLocked(e->ns);
  ++ns.entries;
  ++ns.tier_entries[static_cast<int>(e->tier())];
  ns.tier_bytes[static_cast<int>(e->tier())] += e->size();
  if (e->in_host()) ns.host_slot_bytes += HostSlotLocked(e).capacity;
  if (e->expiry != 0) ttl_->Add(e);
  assert(e->in_host() == (e->tier() == Tier::kHost));
  assert(e->in_device() == (e->tier() == Tier::kDevice));
  TierOf(e->tier())->Link(e);
}

void Store::UnlinkLocked(Entry* e) {
  e->indexed = false;
  NamespaceState& ns = NsLocked(e->ns);
  --ns.entries;
  --ns.tier_entries[static_cast<int>(e->tier())];
  ns.tier_bytes[static_cast<int>(e->tier())] -= e->size();
  if (e->in_host()) ns.host_slot_bytes -= HostSlotLocked(e).capacity;
  if (e->expiry != 0) ttl_->Left(e);  // its record stays, stale
  TierOf(e->tier())->Unlink(e);
}

Result<Reservation> Store::Reserve(const Key& key, const EntryMeta& meta,
                                   std::chrono::milliseconds ttl, NamespaceId ns) {
  if (meta.size > std::min(options_.max_value_bytes, kMaxEntryValueBytes)) {
    return Status::InvalidArgument(
        "value of " + std::to_string(meta.size) + " bytes exceeds " +
        (meta.size > options_.max_value_bytes
             ? "--max-value " + std::to_string(options_.max_value_bytes)
             : "the largest value an entry holds, " + std::to_string(kMaxEntryValueBytes)));
  }
  if (ns == kAllNamespaces) {
    return Status::InvalidArgument("insert into namespace kAllNamespaces: name one namespace");
  }
  Reservation r;
  r.key = key;
  r.ns = ns;
  r.meta = meta;
  r.ttl = ttl.count() > 0 ? ttl : options_.default_ttl;
  // A zero-length value still takes a slot of the smallest class so it has an address.
  uint64_t want = std::max<uint64_t>(meta.size, 1);
  std::optional<Slot> made;  // a slot made by demoting (second attempt)
  for (int attempt = 0; attempt < 2; ++attempt) {
    {
      std::lock_guard lock(mu_);
      if (index_->Contains(ns, key)) {
        if (made) memory_->Free(*made);
        r.exists = true;
        return r;
      }
      if (Status q = CheckQuotaLocked(ns, meta.size); !q.ok()) {
        if (made) memory_->Free(*made);
        counters_.refused_inserts.fetch_add(1, std::memory_order_relaxed);
        ++NsLocked(ns).refused_inserts;
        return q;
      }
      if (auto slot = made ? made : memory_->Allocate(want)) {
        r.slot = *slot;
        r.slot.size = meta.size;
        NamespaceState& st = NsLocked(ns);
        ++st.reserved_entries;
        st.reserved_bytes += meta.size;
        return r;
      }
    }
    if (spill_ == nullptr || attempt > 0) break;
    // The worker did not keep up: make room now rather than refuse.
    counters_.inline_demotions.fetch_add(1, std::memory_order_relaxed);
    StoreTier& host = host_tier();
    DemoteUntilFree(host, want + host.FreeAtHighWatermark());
    made = AllocateHostDemoting(want);
    if (!made) break;
  }
  counters_.refused_inserts.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mu_);
  ++NsLocked(ns).refused_inserts;
  return Status::ResourceExhausted(
      "host memory full: " + std::to_string(memory_->used()) + " of " +
      std::to_string(memory_->capacity()) + " bytes in use" +
      (spill_ ? " and nothing more can be demoted to spill (spill full or everything pinned)"
              : "") +
      ", no room for " + std::to_string(meta.size) +
      " more; retry after entries are taken or expire, or give kvstored a larger --memory" +
      (spill_ ? " or --spill" : " or a --spill tier"));
}

void Store::Abort(Reservation&& r) {
  if (r.exists || r.slot.data == nullptr) return;
  std::lock_guard lock(mu_);
  memory_->Free(r.slot);
  r.slot = {};
  ReleaseReservationLocked(r.ns, r.meta.size);
}

void Store::ReleaseReservationLocked(NamespaceId ns, uint64_t bytes) {
  NamespaceState& st = NsLocked(ns);
  --st.reserved_entries;
  st.reserved_bytes -= bytes;
}

Result<Entry> Store::PrepareCommit(Reservation& r, std::optional<uint64_t> computed_checksum) {
  if (computed_checksum.value_or(ValueChecksum(r.bytes())) != r.meta.checksum) {
    counters_.checksum_failures.fetch_add(1, std::memory_order_relaxed);
    Abort(std::move(r));
    return Status::DataLoss("value for key " + r.key.ToHex() +
                            " does not match its checksum; it was corrupted in transit and was "
                            "not stored; insert it again");
  }
  Entry e;
  e.key = r.key;
  e.ns = r.ns;
  e.set_size(r.meta.size);
  e.checksum = r.meta.checksum;
  e.set_created_unix_ms(UnixMs());
  e.set_tier(Tier::kHost);
  if (r.ttl.count() > 0) e.expiry = ExpiryFor(SteadyClock::now() + r.ttl);
  e.set_host_slot(r.slot.data, r.slot.size_class);
  r.slot = {};
  return e;
}

Status Store::EntryRefusal(const Key& key, const char* what) const {
  return Status::ResourceExhausted(
      std::string("insert of key ") + key.ToHex() + " refused: " + what +
      "; nothing was stored; retry after entries are taken, removed or expire");
}

Result<bool> Store::InstallLocked(Entry& e, std::optional<DeviceSlot> up, const Reservation& r,
                                  Callbacks* cbs) {
  if (e.in_spill) EndWriteThroughLocked(e.id());  // durable mode: now in the index
  if (up) {
    memory_->Free(HostSlotLocked(&e));
    e.set_device_slot(up->offset, up->size_class);
    e.set_tier(Tier::kDevice);
    counters_.device_admissions.fetch_add(1, std::memory_order_relaxed);
  }
  ReleaseReservationLocked(e.ns, e.size());
  auto drop = [&] {
    if (e.in_device()) {
      device_->Free(DeviceSlotLocked(&e));
    } else {
      memory_->Free(HostSlotLocked(&e));
    }
  };
  if (index_->Contains(e.ns, e.key)) {  // a concurrent insert of the same key committed first
    drop();
    return false;
  }
  const std::optional<uint16_t> layout = strings_->Intern(r.meta.layout);
  const std::optional<uint16_t> producer = strings_->Intern(r.meta.producer);
  if (!layout || !producer) {
    if (layout) strings_->Release(*layout);
    if (producer) strings_->Release(*producer);
    drop();
    return EntryRefusal(e.key,
                        "65535 distinct layout and producer strings are in use (the most "
                        "entries may carry at once); give entries fewer distinct layout or "
                        "producer strings (a model or engine name, not a per-request id)");
  }
  e.set_strings(*layout, *producer);
  const NsKey key = e.id();
  if (InsertIndexLocked(e) == nullptr) {
    strings_->Release(*layout);
    strings_->Release(*producer);
    drop();
    return EntryRefusal(e.key, "the store holds as many entries as its entry pool can");
  }
  counters_.inserts.fetch_add(1, std::memory_order_relaxed);
  ++NsLocked(key.ns).inserts;
  WakeWaitersLocked(key, cbs);
  return true;
}

bool Store::WorkerWantedLocked() const {
  return std::any_of(tiers_.begin(), tiers_.end(),
                     [](const auto& t) { return t->NeedsDemotion(); });
}

Result<bool> Store::Commit(Reservation&& r, std::optional<uint64_t> computed_checksum) {
  if (r.exists) return false;
  KVSTORE_ASSIGN_OR_RETURN(Entry e, PrepareCommit(r, computed_checksum));
  KVSTORE_RETURN_IF_ERROR(WriteThroughAtCommit(e, r));
  if (commit_hook_for_tests_) commit_hook_for_tests_();
  // Device tier: copied up before the entry is visible, so no reader sees it mid-move.
  std::optional<DeviceSlot> up = CopyUpAtCommit(e.id(), e.bytes());
  Callbacks cbs;
  Result<bool> stored = false;
  bool wake_worker = false;
  {
    std::lock_guard lock(mu_);
    stored = InstallLocked(e, up, r, &cbs);
    wake_worker = stored.ok() && *stored && WorkerWantedLocked();
  }
  if (wake_worker) worker_cv_.notify_one();
  RunCallbacks(cbs);
  return stored;
}

std::vector<Result<Reservation>> Store::ReserveMany(std::span<const Key> keys,
                                                    std::span<const EntryMeta> metas,
                                                    std::chrono::milliseconds ttl, NamespaceId ns) {
  std::vector<Result<Reservation>> out;
  out.reserve(keys.size());
  if (keys.size() != metas.size()) {
    for (size_t i = 0; i < keys.size(); ++i) {
      out.push_back(Status::InvalidArgument("reserve_many: " + std::to_string(keys.size()) +
                                            " keys but " + std::to_string(metas.size()) +
                                            " metas"));
    }
    return out;
  }
  // One hold of the mutex for every value that fits as it is; the rest (over
  // the size limit, a quota, or needing demotion) go through Reserve one by one.
  std::vector<size_t> slow;
  {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < keys.size(); ++i) {
      out.emplace_back(Status::Internal("unset"));
      if (metas[i].size > std::min(options_.max_value_bytes, kMaxEntryValueBytes) ||
          ns == kAllNamespaces) {
        slow.push_back(i);
        continue;
      }
      Reservation r;
      r.key = keys[i];
      r.ns = ns;
      r.meta = metas[i];
      r.ttl = ttl.count() > 0 ? ttl : options_.default_ttl;
      if (index_->Contains(ns, keys[i])) {
        r.exists = true;
        out[i] = std::move(r);
        continue;
      }
      if (!CheckQuotaLocked(ns, metas[i].size).ok()) {
        slow.push_back(i);
        continue;
      }
      auto slot = memory_->Allocate(std::max<uint64_t>(metas[i].size, 1));
      if (!slot) {
        slow.push_back(i);
        continue;
      }
      r.slot = *slot;
      r.slot.size = metas[i].size;
      NamespaceState& st = NsLocked(ns);
      ++st.reserved_entries;
      st.reserved_bytes += metas[i].size;
      out[i] = std::move(r);
    }
  }
  for (size_t i : slow) out[i] = Reserve(keys[i], metas[i], ttl, ns);
  return out;
}

std::vector<Result<bool>> Store::CommitMany(std::span<Reservation> rs,
                                            std::span<const std::optional<uint64_t>> checksums) {
  std::vector<Result<bool>> out;
  out.reserve(rs.size());
  // Checksums and device copies without the mutex, then one hold to make every
  // entry visible and wake its waiters.
  std::vector<std::pair<std::optional<Entry>, std::optional<DeviceSlot>>> ready(rs.size());
  for (size_t i = 0; i < rs.size(); ++i) {
    out.emplace_back(false);
    if (rs[i].exists) continue;
    auto e = PrepareCommit(rs[i], i < checksums.size() ? checksums[i] : std::nullopt);
    if (!e.ok()) {
      out[i] = e.status();
      continue;
    }
    if (Status s = WriteThroughAtCommit(*e, rs[i]); !s.ok()) {
      out[i] = s;
      continue;
    }
    ready[i].second = CopyUpAtCommit(e->id(), e->bytes());
    ready[i].first = *e;
  }
  Callbacks cbs;
  bool wake_worker = false;
  {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < rs.size(); ++i) {
      if (!ready[i].first) continue;
      out[i] = InstallLocked(*ready[i].first, ready[i].second, rs[i], &cbs);
    }
    wake_worker = WorkerWantedLocked();
  }
  if (wake_worker) worker_cv_.notify_one();
  RunCallbacks(cbs);
  return out;
}

Entry* Store::InsertIndexLocked(const Entry& e) {
  Entry* p = pool_->New(e);
  if (p != nullptr) IndexLocked(p);
  return p;
}

void Store::IndexLocked(Entry* e) {
  index_->Insert(e);
  LinkLocked(e);
}

Slot Store::HostSlotLocked(const Entry* e) const {
  assert(e->in_host());
  Slot s = memory_->SlotAt(e->host_data(), e->size_class(), std::max<uint64_t>(e->size(), 1));
  s.size = e->size();
  return s;
}

DeviceSlot Store::DeviceSlotLocked(const Entry* e) const {
  assert(e->in_device());
  DeviceSlot d =
      device_->SlotAt(e->device_offset(), e->size_class(), std::max<uint64_t>(e->size(), 1));
  d.size = e->size();
  return d;
}

void Store::EraseLocked(Entry* e) {
  index_->Erase(e);
  UnlinkLocked(e);
  FreeOrDoomLocked(e);
}

void Store::FreeOrDoomLocked(Entry* e) {
  if (e->pinned) {  // a select or a tier move is still reading these bytes
    e->doomed = true;
    ++held_entries_;
    return;
  }
  FreeEntryLocked(e);
}

void Store::UnpinLocked(Entry* e) {
  counts_->Unpin(e);
  if (e->doomed && !e->pinned) {
    --held_entries_;
    FreeEntryLocked(e);
  }
}

void Store::UnpinAfterMoveLocked(Entry* e) {
  e->moving = false;
  UnpinLocked(e);
}

void Store::FreeEntryLocked(Entry* e) {
  if (e->in_host()) memory_->Free(HostSlotLocked(e));
  if (e->in_device()) device_->Free(DeviceSlotLocked(e));
  if (e->in_spill && spill_ != nullptr) {
    // Unless a newer entry under the same key owns the disk copy now, or is
    // being written through to it (durable mode) and not yet in the index.
    Entry* now = index_->Find(e->ns, e->key);
    if ((now == nullptr || !now->in_spill) && !durable_in_flight_.contains(e->id())) {
      Status s = spill_->Delete(tiers::SpillKey(e->key, e->ns));
      if (!s.ok() && s.code() != StatusCode::kNotFound) {
        counters_.spill_errors.fetch_add(1, std::memory_order_relaxed);
        spdlog::warn("spill delete of key {} failed: {}", e->key.ToHex(), s.ToString());
      }
    }
  }
  strings_->Release(e->layout());
  strings_->Release(e->producer());
  counts_->Forget(e);
  pool_->Delete(e);
}

EntryMeta Store::MetaLocked(const Entry* e) const {
  EntryMeta m;
  m.size = e->size();
  m.checksum = e->checksum;
  m.layout = strings_->Get(e->layout());
  m.producer = strings_->Get(e->producer());
  m.created_unix_ms = e->created_unix_ms();
  m.expires_unix_ms = ExpiresUnixMs(e->expiry);
  m.tier = e->tier();
  return m;
}

size_t Store::MatchPrefix(std::span<const Key> keys, NamespaceId ns) {
  std::lock_guard lock(mu_);
  size_t n = 0;
  while (n < keys.size() && index_->Contains(ns, keys[n])) ++n;
  return n;
}

size_t Store::Retain(std::span<const Key> keys, NamespaceId ns) {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (; n < keys.size(); ++n) {
    Entry* e = index_->Find(ns, keys[n]);
    if (e == nullptr) break;
    counts_->AddTaker(e);
  }
  return n;
}

size_t Store::Remove(std::span<const Key> keys, NamespaceId ns) {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const Key& k : keys) {
    Entry* e = index_->Find(ns, k);
    if (e == nullptr) continue;
    EraseLocked(e);
    ++n;
  }
  return n;
}

uint64_t Store::TtlBucket(SteadyClock::time_point t) const {
  const int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - started_).count();
  return ms <= 0 ? 0 : static_cast<uint64_t>(ms / TtlBuckets::kBucketMs);
}

uint32_t Store::ExpiryFor(SteadyClock::time_point deadline) const {
  return static_cast<uint32_t>(std::min<uint64_t>(TtlBucket(deadline) + 1, UINT32_MAX));
}

uint64_t Store::ExpiresUnixMs(uint32_t expiry) const {
  if (expiry == 0) return 0;
  return started_unix_ms_ + uint64_t{expiry} * TtlBuckets::kBucketMs;
}

size_t Store::ExpireTtl() {
  // Whole buckets that ended before now, at most kExpirySlice entries per hold
  // of the mutex so no request waits behind a mass expiry for long.
  constexpr size_t kExpirySlice = 512;
  size_t total = 0, examined = 0;
  for (;;) {
    // Buckets before now's: those whose Entry::expiry (bucket + 1) <= now's bucket.
    const auto now_bucket =
        static_cast<uint32_t>(std::min<uint64_t>(TtlBucket(SteadyClock::now()), UINT32_MAX));
    size_t n = 0, looked = 0;
    {
      std::lock_guard lock(mu_);
      while (n < kExpirySlice && looked < 4 * kExpirySlice) {
        Entry* e = ttl_->NextExpired(now_bucket, &looked);
        if (e == nullptr) break;
        spdlog::debug("ttl expired: key {} ({} bytes, layout '{}', producer '{}') was never taken",
                      e->key.ToHex(), e->size(), strings_->Get(e->layout()),
                      strings_->Get(e->producer()));
        ++NsLocked(e->ns).ttl_expired;
        assert(index_->Find(e->ns, e->key) == e);
        EraseLocked(e);
        ++n;
      }
    }
    total += n;
    examined += looked;
    if (n < kExpirySlice && looked < 4 * kExpirySlice) break;
  }
  counters_.ttl_expired.fetch_add(total, std::memory_order_relaxed);
  counters_.ttl_examined.fetch_add(examined, std::memory_order_relaxed);
  return total;
}

}  // namespace kvstore::server
