#include "kvstore/server/store.h"

#include <algorithm>
#include <cassert>
#include <cstring>

#include <spdlog/spdlog.h>

#include "entry.h"
#include "entry_index.h"
#include "entry_list.h"

namespace kvstore::server {

using SteadyClock = std::chrono::steady_clock;

namespace {

uint64_t UnixMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

std::string FirstMissing(const Key& k) { return "key " + k.ToHex() + " is not stored"; }

}  // namespace

// ---- Delivery ----

Delivery::~Delivery() {
  if (!finished_) Finish(false);
}

uint64_t Delivery::total_bytes() const {
  uint64_t n = 0;
  for (const auto& e : entries_) n += e.bytes.size();
  return n;
}

void Delivery::Finish(bool delivered) {
  if (finished_) return;
  finished_ = true;
  store_->FinishDelivery(this, delivered);
}

// ---- Store ----

Store::Store(const StoreOptions& options, std::unique_ptr<HostMemory> memory,
             std::unique_ptr<tiers::SpillStore> spill, std::unique_ptr<DeviceMemory> device)
    : options_(options),
      started_(SteadyClock::now()),
      memory_(std::move(memory)),
      index_(std::make_unique<EntryIndex>()),
      strings_(std::make_unique<StringTable>()),
      lists_(std::make_unique<EntryLists>()),
      spill_(std::move(spill)),
      device_(std::move(device)) {}

Store::~Store() {
  {
    std::lock_guard lock(mu_);
    stop_worker_ = true;
  }
  worker_cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  std::lock_guard lock(mu_);
  index_->ForEach([&](Entry* e) {
    if (e->in_host()) memory_->Free(e->slot());
    if (e->in_device()) device_->Free(e->dev());
    delete e;
  });
  index_.reset();
}

std::string Store::DescribeMemory() const {
  std::lock_guard lock(mu_);
  return memory_->Describe();
}

std::string Store::DescribeDevice() const {
  std::lock_guard lock(mu_);
  return device_ ? device_->Describe() : std::string();
}

void Store::LinkLocked(Entry* e) {
  e->indexed = true;
  NamespaceState& ns = NsLocked(e->ns);
  ++ns.entries;
  ++ns.tier_entries[static_cast<int>(e->meta.tier)];
  ns.tier_bytes[static_cast<int>(e->meta.tier)] += e->meta.size;
  if (e->in_host()) ns.host_slot_bytes += e->capacity;
  if (e->expires != SteadyClock::time_point::max()) {
    lists_->ttl_buckets[TtlBucket(e->expires)].PushFront(e);
  }
  if (e->in_host()) {
    lists_->host_lru.PushFront(e);
    host_value_bytes_ += e->meta.size;
  } else if (e->in_device()) {
    lists_->device_lru.PushFront(e);
    device_value_bytes_ += e->meta.size;
    ++device_entries_;
  } else {
    spill_value_bytes_ += e->meta.size;
    ++spill_entries_;
  }
}

void Store::UnlinkLocked(Entry* e) {
  e->indexed = false;
  NamespaceState& ns = NsLocked(e->ns);
  --ns.entries;
  --ns.tier_entries[static_cast<int>(e->meta.tier)];
  ns.tier_bytes[static_cast<int>(e->meta.tier)] -= e->meta.size;
  if (e->in_host()) ns.host_slot_bytes -= e->capacity;
  if (e->expires != SteadyClock::time_point::max()) {
    auto b = lists_->ttl_buckets.find(TtlBucket(e->expires));
    b->second.Erase(e);
    if (b->second.empty()) lists_->ttl_buckets.erase(b);
  }
  if (e->in_host()) {
    lists_->host_lru.Erase(e);
    host_value_bytes_ -= e->meta.size;
  } else if (e->in_device()) {
    lists_->device_lru.Erase(e);
    device_value_bytes_ -= e->meta.size;
    --device_entries_;
  } else {
    spill_value_bytes_ -= e->meta.size;
    --spill_entries_;
  }
}

Result<Reservation> Store::Reserve(const Key& key, const EntryMeta& meta,
                                   std::chrono::milliseconds ttl, NamespaceId ns) {
  if (meta.size > options_.max_value_bytes) {
    return Status::InvalidArgument("value of " + std::to_string(meta.size) +
                                   " bytes exceeds --max-value " +
                                   std::to_string(options_.max_value_bytes));
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
    DemoteUntilFree(want + (memory_->capacity() -
                            static_cast<uint64_t>(options_.high_watermark *
                                                  static_cast<double>(memory_->capacity()))));
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

Result<std::unique_ptr<Entry>> Store::PrepareCommit(Reservation& r,
                                                    std::optional<uint64_t> computed_checksum) {
  if (computed_checksum.value_or(ValueChecksum(r.bytes())) != r.meta.checksum) {
    counters_.checksum_failures.fetch_add(1, std::memory_order_relaxed);
    Abort(std::move(r));
    return Status::DataLoss("value for key " + r.key.ToHex() +
                            " does not match its checksum; it was corrupted in transit and was "
                            "not stored; insert it again");
  }
  auto e = std::make_unique<Entry>();
  e->key = r.key;
  e->ns = r.ns;
  e->meta.size = r.meta.size;
  e->meta.checksum = r.meta.checksum;
  e->meta.created_unix_ms = UnixMs();
  e->meta.tier = Tier::kHost;
  if (r.ttl.count() > 0) {
    e->expires = SteadyClock::now() + r.ttl;
    e->meta.expires_unix_ms = e->meta.created_unix_ms + static_cast<uint64_t>(r.ttl.count());
  } else {
    e->meta.expires_unix_ms = 0;
  }
  e->set_slot(r.slot);
  r.slot = {};
  return e;
}

bool Store::InstallLocked(std::unique_ptr<Entry> e, std::optional<DeviceSlot> up,
                          const Reservation& r, Callbacks* cbs) {
  if (up) {
    memory_->Free(e->slot());
    e->clear_place();
    e->set_dev(*up);
    e->meta.tier = Tier::kDevice;
    counters_.device_admissions.fetch_add(1, std::memory_order_relaxed);
  }
  ReleaseReservationLocked(e->ns, e->meta.size);
  if (index_->Contains(e->ns, e->key)) {  // a concurrent insert of the same key committed first
    if (e->in_device()) {
      device_->Free(e->dev());
    } else {
      memory_->Free(e->slot());
    }
    return false;
  }
  const NsKey key = e->id();
  e->meta.layout = strings_->Intern(r.meta.layout);
  e->meta.producer = strings_->Intern(r.meta.producer);
  InsertIndexLocked(std::move(e));
  counters_.inserts.fetch_add(1, std::memory_order_relaxed);
  ++NsLocked(key.ns).inserts;
  WakeWaitersLocked(key, cbs);
  return true;
}

bool Store::WorkerWantedLocked() const {
  return (spill_ != nullptr &&
          static_cast<double>(memory_->used()) >
              options_.high_watermark * static_cast<double>(memory_->capacity())) ||
         DeviceOverHighWatermarkLocked();
}

Result<bool> Store::Commit(Reservation&& r, std::optional<uint64_t> computed_checksum) {
  if (r.exists) return false;
  KVSTORE_ASSIGN_OR_RETURN(std::unique_ptr<Entry> e, PrepareCommit(r, computed_checksum));
  // Device tier: copied up before the entry is visible, so no reader sees it mid-move.
  std::optional<DeviceSlot> up = CopyUpAtCommit(e->id(), e->bytes());
  Callbacks cbs;
  bool stored = false, wake_worker = false;
  {
    std::lock_guard lock(mu_);
    stored = InstallLocked(std::move(e), up, r, &cbs);
    wake_worker = stored && WorkerWantedLocked();
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
      if (metas[i].size > options_.max_value_bytes || ns == kAllNamespaces) {
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
  std::vector<std::pair<std::unique_ptr<Entry>, std::optional<DeviceSlot>>> ready(rs.size());
  for (size_t i = 0; i < rs.size(); ++i) {
    out.emplace_back(false);
    if (rs[i].exists) continue;
    auto e = PrepareCommit(rs[i], i < checksums.size() ? checksums[i] : std::nullopt);
    if (!e.ok()) {
      out[i] = e.status();
      continue;
    }
    ready[i].second = CopyUpAtCommit((*e)->id(), (*e)->bytes());
    ready[i].first = std::move(e).value();
  }
  Callbacks cbs;
  bool wake_worker = false;
  {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < rs.size(); ++i) {
      if (ready[i].first == nullptr) continue;
      out[i] = InstallLocked(std::move(ready[i].first), ready[i].second, rs[i], &cbs);
    }
    wake_worker = WorkerWantedLocked();
  }
  if (wake_worker) worker_cv_.notify_one();
  RunCallbacks(cbs);
  return out;
}

void Store::InsertIndexLocked(std::unique_ptr<Entry> e) {
  Entry* raw = e.release();
  index_->Insert(raw);
  LinkLocked(raw);
}

void Store::EraseLocked(Entry* e) {
  index_->Erase(e);
  UnlinkLocked(e);
  if (e->pins > 0) {
    e->doomed = true;
    ++held_entries_;
    return;
  }
  FreeEntryLocked(e);
}

void Store::FreeEntryLocked(Entry* e) {
  if (e->in_host()) memory_->Free(e->slot());
  if (e->in_device()) device_->Free(e->dev());
  if (e->in_spill && spill_ != nullptr) {
    // Unless a newer entry under the same key owns the disk copy now.
    Entry* now = index_->Find(e->ns, e->key);
    if (now == nullptr || !now->in_spill) {
      Status s = spill_->Delete(tiers::SpillKey(e->key, e->ns));
      if (!s.ok() && s.code() != StatusCode::kNotFound) {
        counters_.spill_errors.fetch_add(1, std::memory_order_relaxed);
        spdlog::warn("spill delete of key {} failed: {}", e->key.ToHex(), s.ToString());
      }
    }
  }
  strings_->Release(e->meta.layout);
  strings_->Release(e->meta.producer);
  delete e;
}

EntryMeta Store::MetaLocked(const Entry* e) const {
  EntryMeta m;
  m.size = e->meta.size;
  m.checksum = e->meta.checksum;
  m.layout = strings_->Get(e->meta.layout);
  m.producer = strings_->Get(e->meta.producer);
  m.created_unix_ms = e->meta.created_unix_ms;
  m.expires_unix_ms = e->meta.expires_unix_ms;
  m.tier = e->meta.tier;
  return m;
}

std::unique_ptr<Delivery> Store::TryClaimLocked(NamespaceId ns, std::span<const Key> keys) {
  std::vector<Key> spilled;
  for (const Key& k : keys) {
    Entry* e = index_->Find(ns, k);
    if (e == nullptr) return nullptr;
    if (!e->in_host()) spilled.push_back(k);
  }
  if (!spilled.empty()) {
    // Every key is committed but some are on disk or in the device tier: bring
    // them into host slots, then the promotion wakes the waiters again.
    QueuePromotionLocked(ns, std::move(spilled), nullptr);
    return nullptr;
  }
  std::unique_ptr<Delivery> d(new Delivery(this, /*drop=*/true));
  for (const Key& k : keys) {
    Entry* e = index_->Find(ns, k);
    if (e == nullptr) continue;  // the same key listed twice: claimed already
    if (e->takers > 1) {
      // Another taker is still due: this one gets the bytes, the entry stays.
      --e->takers;
      ++e->pins;
      d->shared_.push_back(e);
      continue;
    }
    index_->Erase(e);
    UnlinkLocked(e);
    ++held_entries_;
    d->held_.push_back(e);
  }
  for (const Key& k : keys) {
    auto match = [&](Entry* e) { return e->key == k; };
    auto held = std::find_if(d->held_.begin(), d->held_.end(), match);
    Entry* e =
        held != d->held_.end() ? *held : *std::find_if(d->shared_.begin(), d->shared_.end(), match);
    d->entries_.push_back({k, MetaLocked(e), e->bytes()});
  }
  return d;
}

void Store::WakeWaitersLocked(const NsKey& key, Callbacks* out) {
  for (uint64_t id : waiters_.WaitingOn(key)) {
    const Waiter* w = waiters_.Find(id);
    if (w == nullptr) continue;
    auto d = TryClaimLocked(w->ns, w->keys);
    if (d == nullptr) continue;  // still missing other keys
    auto waiter = waiters_.Remove(id);
    counters_.hits.fetch_add(1, std::memory_order_relaxed);
    ++NsLocked(key.ns).hits;
    out->emplace_back(std::move(waiter->callback), std::move(d));
    return;  // the key is claimed now: nobody else can take it
  }
}

void Store::RunCallbacks(Callbacks& cbs) {
  for (auto& [cb, d] : cbs) cb(std::move(d));
}

void Store::Select(std::span<const Key> keys, const DeliveryCallback& callback, NamespaceId ns) {
  SelectImpl(ns, keys, callback, /*may_promote=*/true);
}

void Store::SelectImpl(NamespaceId ns, std::span<const Key> keys, const DeliveryCallback& callback,
                       bool may_promote) {
  std::unique_ptr<Delivery> d(new Delivery(this, /*drop=*/false));
  {
    std::lock_guard lock(mu_);
    std::vector<Key> spilled;
    for (const Key& k : keys) {
      Entry* e = index_->Find(ns, k);
      if (e == nullptr) {
        counters_.misses.fetch_add(1, std::memory_order_relaxed);
        ++NsLocked(ns).misses;
        d->finished_ = true;  // nothing pinned yet
        callback(Status::NotFound(FirstMissing(k)));
        return;
      }
      if (!e->in_host()) spilled.push_back(k);
    }
    if (!spilled.empty()) {
      d->finished_ = true;
      if (may_promote) {
        QueuePromotionLocked(ns, std::move(spilled), callback, {keys.begin(), keys.end()});
        return;
      }
      callback(Status::ResourceExhausted(
          "could not bring " + std::to_string(spilled.size()) +
          " spilled or device-tier entries into host memory (it is full of entries being "
          "read); retry"));
      return;
    }
    for (const Key& k : keys) {
      Entry* e = index_->Find(ns, k);
      ++e->pins;
      lists_->host_lru.MoveToFront(e);
      d->held_.push_back(e);
      d->entries_.push_back({k, MetaLocked(e), e->bytes()});
    }
    counters_.hits.fetch_add(1, std::memory_order_relaxed);
    ++NsLocked(ns).hits;
  }
  callback(std::move(d));
}

uint64_t Store::DropSelect(std::span<const Key> keys, DeliveryCallback callback, NamespaceId ns) {
  std::unique_ptr<Delivery> d;
  uint64_t id = 0;
  Status refused;
  {
    std::lock_guard lock(mu_);
    d = TryClaimLocked(ns, keys);
    if (d != nullptr) {
      counters_.hits.fetch_add(1, std::memory_order_relaxed);
      ++NsLocked(ns).hits;
    } else if (const uint64_t limit = NsLocked(ns).quota.waiters;
               limit != 0 && waiters_.CountIn(ns) >= limit) {
      refused = Status::ResourceExhausted(
          "namespace " + std::to_string(ns) + " is at its quota of " + std::to_string(limit) +
          " pending drop_selects; wait for some to resolve, or raise the namespace's waiters "
          "quota");
    } else {
      id = waiters_.Add(ns, {keys.begin(), keys.end()}, std::move(callback));
    }
  }
  if (d != nullptr) callback(std::move(d));
  if (!refused.ok()) callback(refused);
  return id;
}

bool Store::CancelWaiter(uint64_t id) {
  std::lock_guard lock(mu_);
  std::optional<Waiter> removed = waiters_.Remove(id);
  if (!removed) return false;
  counters_.misses.fetch_add(1, std::memory_order_relaxed);
  ++NsLocked(removed->ns).misses;
  return true;
}

void Store::FinishDelivery(Delivery* d, bool delivered) {
  Callbacks cbs;
  {
    std::lock_guard lock(mu_);
    for (Entry* e : d->shared_) {
      --e->pins;
      if (!delivered) ++e->takers;  // this taker is still due
      if (e->pins == 0 && e->doomed) {
        --held_entries_;
        FreeEntryLocked(e);
      }
    }
    d->shared_.clear();
    for (Entry* e : d->held_) {
      if (!d->drop_) {
        --e->pins;
        if (e->pins == 0 && e->doomed) {
          --held_entries_;
          FreeEntryLocked(e);
        }
        continue;
      }
      --held_entries_;
      if (delivered) {
        if (e->pins > 0) {  // a select or a tier move is still reading these bytes
          e->doomed = true;
          ++held_entries_;
        } else {
          FreeEntryLocked(e);
        }
        continue;
      }
      // Delivery failed: the entry goes back for the next taker.
      counters_.redeliveries.fetch_add(1, std::memory_order_relaxed);
      if (index_->Contains(e->ns, e->key)) {  // re-inserted meanwhile; keep the newer copy
        e->in_spill = false;  // the disk copy, if any, belongs to the newer entry now
        if (e->pins > 0) {
          e->doomed = true;
          ++held_entries_;
        } else {
          FreeEntryLocked(e);
        }
        continue;
      }
      const NsKey key = e->id();
      InsertIndexLocked(std::unique_ptr<Entry>(e));
      WakeWaitersLocked(key, &cbs);
    }
    d->held_.clear();
  }
  RunCallbacks(cbs);
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
    ++e->takers;
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
  return ms <= 0 ? 0 : static_cast<uint64_t>(ms / EntryLists::kTtlBucketMs);
}

size_t Store::ExpireTtl() {
  // Whole buckets that ended before now, at most kExpirySlice entries per hold
  // of the mutex so no request waits behind a mass expiry for long.
  constexpr size_t kExpirySlice = 512;
  size_t total = 0;
  for (;;) {
    const uint64_t now_bucket = TtlBucket(SteadyClock::now());
    size_t n = 0;
    {
      std::lock_guard lock(mu_);
      auto& buckets = lists_->ttl_buckets;
      while (n < kExpirySlice && !buckets.empty() && buckets.begin()->first < now_bucket) {
        Entry* e = buckets.begin()->second.back();
        spdlog::debug("ttl expired: key {} ({} bytes, layout '{}', producer '{}') was never taken",
                      e->key.ToHex(), e->meta.size, strings_->Get(e->meta.layout),
                      strings_->Get(e->meta.producer));
        ++NsLocked(e->ns).ttl_expired;
        assert(index_->Find(e->ns, e->key) == e);
        EraseLocked(e);  // unlinks it from its bucket
        ++n;
      }
    }
    total += n;
    if (n < kExpirySlice) break;
  }
  counters_.ttl_expired.fetch_add(total, std::memory_order_relaxed);
  counters_.ttl_examined.fetch_add(total, std::memory_order_relaxed);
  return total;
}

void Store::FailAllWaiters(const std::string& why) {
  std::vector<Waiter> all;
  {
    std::lock_guard lock(mu_);
    all = waiters_.TakeAll();
  }
  for (auto& w : all) w.callback(Status::Unavailable(why));
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
  struct Found {
    NsKey id;
    EntryMeta meta;
  };
  std::vector<Found> found;
  {
    std::lock_guard lock(mu_);
    index_->ForEach([&](Entry* e) {
      const NsKey k = e->id();
      if (!all && k.ns != ns) return;
      if (after && !(*after < k)) return;
      auto kb = std::span<const std::byte>(k.key.bytes);
      if (prefix.size() > Key::kSize || !std::equal(prefix.begin(), prefix.end(), kb.begin())) {
        return;
      }
      if (tier >= 0 && static_cast<int>(e->meta.tier) != tier) return;
      found.push_back({k, MetaLocked(e)});
    });
  }
  auto by_key = [](const Found& a, const Found& b) { return a.id < b.id; };
  ListPage page;
  if (found.size() > limit) {
    std::partial_sort(found.begin(), found.begin() + limit, found.end(), by_key);
    found.resize(limit);
    const NsKey& last = found.back().id;
    if (all) {
      page.next_cursor = AllNamespacesCursor(last);
    } else {
      page.next_cursor.assign(last.key.bytes.begin(), last.key.bytes.end());
    }
  } else {
    std::sort(found.begin(), found.end(), by_key);
  }
  page.entries.reserve(found.size());
  if (namespaces != nullptr) namespaces->clear();
  for (auto& f : found) {
    page.entries.push_back({f.id.key, std::move(f.meta)});
    if (namespaces != nullptr) namespaces->push_back(f.id.ns);
  }
  return page;
}

size_t Store::IndexLongestChain() const {
  std::lock_guard lock(mu_);
  size_t longest = 0;
  longest = index_->LongestProbe();
  return longest;
}

StoreStats Store::Stats() {
  StoreStats s;
  {
    std::lock_guard lock(mu_);
    TierStats host;
    host.tier = Tier::kHost;
    host.entries = index_->size() - spill_entries_ - device_entries_;
    host.bytes = host_value_bytes_;
    host.capacity_bytes = memory_->capacity();
    host.used_bytes = memory_->used();
    s.tiers.push_back(host);
    if (spill_ != nullptr) {
      tiers::SpillStats ss = spill_->Stats();
      TierStats spill;
      spill.tier = Tier::kSpill;
      spill.entries = spill_entries_;
      spill.bytes = spill_value_bytes_;
      spill.capacity_bytes = ss.capacity_bytes;
      spill.used_bytes = ss.disk_bytes;
      s.tiers.push_back(spill);
    }
    if (device_ != nullptr) {
      TierStats device;
      device.tier = Tier::kDevice;
      device.entries = device_entries_;
      device.bytes = device_value_bytes_;
      device.capacity_bytes = device_->capacity();
      device.used_bytes = device_->used();
      s.tiers.push_back(device);
    }
    s.waiters = waiters_.size();
    s.fragmentation = host.used_bytes == 0 ? 0.0
                                           : 1.0 - static_cast<double>(host.bytes) /
                                                       static_cast<double>(host.used_bytes);
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
  s.uptime_seconds = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(SteadyClock::now() - started_).count());
  return s;
}

}  // namespace kvstore::server
