#include "kvstore/server/store.h"

#include <algorithm>
#include <cstring>

#include <spdlog/spdlog.h>

#include "entry.h"

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
  for (auto& [k, e] : index_) {
    if (e->in_host()) memory_->Free(e->slot);
    if (e->in_device()) device_->Free(e->dev);
  }
  index_.clear();
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
  if (e->in_host()) {
    lru_.push_front(e);
    e->lru = lru_.begin();
    host_value_bytes_ += e->meta.size;
  } else if (e->in_device()) {
    device_lru_.push_front(e);
    e->lru = device_lru_.begin();
    device_value_bytes_ += e->meta.size;
    ++device_entries_;
  } else {
    spill_value_bytes_ += e->meta.size;
    ++spill_entries_;
  }
}

void Store::UnlinkLocked(Entry* e) {
  e->indexed = false;
  if (e->in_host()) {
    lru_.erase(e->lru);
    host_value_bytes_ -= e->meta.size;
  } else if (e->in_device()) {
    device_lru_.erase(e->lru);
    device_value_bytes_ -= e->meta.size;
    --device_entries_;
  } else {
    spill_value_bytes_ -= e->meta.size;
    --spill_entries_;
  }
}

Result<Reservation> Store::Reserve(const Key& key, const EntryMeta& meta,
                                   std::chrono::milliseconds ttl) {
  if (meta.size > options_.max_value_bytes) {
    return Status::InvalidArgument("value of " + std::to_string(meta.size) +
                                   " bytes exceeds --max-value " +
                                   std::to_string(options_.max_value_bytes));
  }
  Reservation r;
  r.key = key;
  r.meta = meta;
  r.ttl = ttl.count() > 0 ? ttl : options_.default_ttl;
  // A zero-length value still takes a slot of the smallest class so it has an address.
  uint64_t want = std::max<uint64_t>(meta.size, 1);
  for (int attempt = 0; attempt < 2; ++attempt) {
    {
      std::lock_guard lock(mu_);
      if (index_.contains(key)) {
        r.exists = true;
        return r;
      }
      if (auto slot = memory_->Allocate(want)) {
        r.slot = *slot;
        r.slot.size = meta.size;
        return r;
      }
    }
    if (spill_ == nullptr || attempt > 0) break;
    // The worker did not keep up: make room now rather than refuse.
    counters_.inline_demotions.fetch_add(1, std::memory_order_relaxed);
    DemoteUntilFree(want + (memory_->capacity() -
                            static_cast<uint64_t>(options_.high_watermark *
                                                  static_cast<double>(memory_->capacity()))));
  }
  counters_.refused_inserts.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mu_);
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
}

Result<bool> Store::Commit(Reservation&& r, std::optional<uint64_t> computed_checksum) {
  if (r.exists) return false;
  if (computed_checksum.value_or(ValueChecksum(r.bytes())) != r.meta.checksum) {
    counters_.checksum_failures.fetch_add(1, std::memory_order_relaxed);
    Abort(std::move(r));
    return Status::DataLoss("value for key " + r.key.ToHex() +
                            " does not match its checksum; it was corrupted in transit and was "
                            "not stored; insert it again");
  }
  auto e = std::make_unique<Entry>();
  e->key = r.key;
  e->meta = r.meta;
  e->meta.created_unix_ms = UnixMs();
  e->meta.tier = Tier::kHost;
  if (r.ttl.count() > 0) {
    e->expires = SteadyClock::now() + r.ttl;
    e->meta.expires_unix_ms = e->meta.created_unix_ms + static_cast<uint64_t>(r.ttl.count());
  } else {
    e->meta.expires_unix_ms = 0;
  }
  e->slot = r.slot;
  r.slot = {};
  // Device tier: copied up before the entry is visible, so no reader sees it mid-move.
  std::optional<DeviceSlot> up = CopyUpAtCommit(e->key, e->bytes());
  Callbacks cbs;
  bool wake_worker = false;
  {
    std::lock_guard lock(mu_);
    if (up) {
      memory_->Free(e->slot);
      e->slot = {};
      e->dev = *up;
      e->meta.tier = Tier::kDevice;
      counters_.device_admissions.fetch_add(1, std::memory_order_relaxed);
    }
    if (index_.contains(e->key)) {  // a concurrent insert of the same key committed first
      if (e->in_device()) {
        device_->Free(e->dev);
      } else {
        memory_->Free(e->slot);
      }
      return false;
    }
    Key key = e->key;
    InsertIndexLocked(std::move(e));
    counters_.inserts.fetch_add(1, std::memory_order_relaxed);
    WakeWaitersLocked(key, &cbs);
    wake_worker = (spill_ != nullptr &&
                   static_cast<double>(memory_->used()) >
                       options_.high_watermark * static_cast<double>(memory_->capacity())) ||
                  DeviceOverHighWatermarkLocked();
  }
  if (wake_worker) worker_cv_.notify_one();
  RunCallbacks(cbs);
  return true;
}

void Store::InsertIndexLocked(std::unique_ptr<Entry> e) {
  Entry* raw = e.get();
  index_.emplace(raw->key, std::move(e));
  LinkLocked(raw);
}

void Store::EraseLocked(std::unordered_map<Key, std::unique_ptr<Entry>, KeyHash>::iterator it) {
  Entry* e = it->second.release();
  index_.erase(it);
  UnlinkLocked(e);
  if (e->pins > 0) {
    e->doomed = true;
    ++held_entries_;
    return;
  }
  FreeEntryLocked(e);
}

void Store::FreeEntryLocked(Entry* e) {
  if (e->in_host()) memory_->Free(e->slot);
  if (e->in_device()) device_->Free(e->dev);
  if (e->in_spill && spill_ != nullptr) {
    // Unless a newer entry under the same key owns the disk copy now.
    auto it = index_.find(e->key);
    if (it == index_.end() || !it->second->in_spill) {
      Status s = spill_->Delete(e->key);
      if (!s.ok() && s.code() != StatusCode::kNotFound) {
        counters_.spill_errors.fetch_add(1, std::memory_order_relaxed);
        spdlog::warn("spill delete of key {} failed: {}", e->key.ToHex(), s.ToString());
      }
    }
  }
  delete e;
}

std::unique_ptr<Delivery> Store::TryClaimLocked(std::span<const Key> keys) {
  std::vector<Key> spilled;
  for (const Key& k : keys) {
    auto it = index_.find(k);
    if (it == index_.end()) return nullptr;
    if (!it->second->in_host()) spilled.push_back(k);
  }
  if (!spilled.empty()) {
    // Every key is committed but some are on disk or in the device tier: bring
    // them into host slots, then the promotion wakes the waiters again.
    QueuePromotionLocked(std::move(spilled), nullptr);
    return nullptr;
  }
  std::unique_ptr<Delivery> d(new Delivery(this, /*drop=*/true));
  for (const Key& k : keys) {
    auto it = index_.find(k);
    if (it == index_.end()) continue;  // the same key listed twice: claimed already
    if (it->second->takers > 1) {
      // Another taker is still due: this one gets the bytes, the entry stays.
      Entry* e = it->second.get();
      --e->takers;
      ++e->pins;
      d->shared_.push_back(e);
      continue;
    }
    Entry* e = it->second.release();
    index_.erase(it);
    UnlinkLocked(e);
    ++held_entries_;
    d->held_.push_back(e);
  }
  for (const Key& k : keys) {
    auto match = [&](Entry* e) { return e->key == k; };
    auto held = std::find_if(d->held_.begin(), d->held_.end(), match);
    Entry* e =
        held != d->held_.end() ? *held : *std::find_if(d->shared_.begin(), d->shared_.end(), match);
    d->entries_.push_back({k, e->meta, e->bytes()});
  }
  return d;
}

void Store::WakeWaitersLocked(const Key& key, Callbacks* out) {
  for (uint64_t id : waiters_.WaitingOn(key)) {
    const Waiter* w = waiters_.Find(id);
    if (w == nullptr) continue;
    auto d = TryClaimLocked(w->keys);
    if (d == nullptr) continue;  // still missing other keys
    auto waiter = waiters_.Remove(id);
    counters_.hits.fetch_add(1, std::memory_order_relaxed);
    out->emplace_back(std::move(waiter->callback), std::move(d));
    return;  // the key is claimed now: nobody else can take it
  }
}

void Store::RunCallbacks(Callbacks& cbs) {
  for (auto& [cb, d] : cbs) cb(std::move(d));
}

void Store::Select(std::span<const Key> keys, const DeliveryCallback& callback) {
  SelectImpl(keys, callback, /*may_promote=*/true);
}

void Store::SelectImpl(std::span<const Key> keys, const DeliveryCallback& callback,
                       bool may_promote) {
  std::unique_ptr<Delivery> d(new Delivery(this, /*drop=*/false));
  {
    std::lock_guard lock(mu_);
    std::vector<Key> spilled;
    for (const Key& k : keys) {
      auto it = index_.find(k);
      if (it == index_.end()) {
        counters_.misses.fetch_add(1, std::memory_order_relaxed);
        d->finished_ = true;  // nothing pinned yet
        callback(Status::NotFound(FirstMissing(k)));
        return;
      }
      if (!it->second->in_host()) spilled.push_back(k);
    }
    if (!spilled.empty()) {
      d->finished_ = true;
      if (may_promote) {
        QueuePromotionLocked(std::move(spilled), callback, {keys.begin(), keys.end()});
        return;
      }
      callback(Status::ResourceExhausted(
          "could not bring " + std::to_string(spilled.size()) +
          " spilled or device-tier entries into host memory (it is full of entries being "
          "read); retry"));
      return;
    }
    for (const Key& k : keys) {
      Entry* e = index_.find(k)->second.get();
      ++e->pins;
      lru_.splice(lru_.begin(), lru_, e->lru);
      d->held_.push_back(e);
      d->entries_.push_back({k, e->meta, e->bytes()});
    }
    counters_.hits.fetch_add(1, std::memory_order_relaxed);
  }
  callback(std::move(d));
}

uint64_t Store::DropSelect(std::span<const Key> keys, DeliveryCallback callback) {
  std::unique_ptr<Delivery> d;
  uint64_t id = 0;
  {
    std::lock_guard lock(mu_);
    d = TryClaimLocked(keys);
    if (d == nullptr) {
      id = waiters_.Add({keys.begin(), keys.end()}, std::move(callback));
    } else {
      counters_.hits.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (d != nullptr) callback(std::move(d));
  return id;
}

bool Store::CancelWaiter(uint64_t id) {
  std::lock_guard lock(mu_);
  bool removed = waiters_.Remove(id).has_value();
  if (removed) counters_.misses.fetch_add(1, std::memory_order_relaxed);
  return removed;
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
      if (index_.contains(e->key)) {  // re-inserted meanwhile; keep the newer copy
        e->in_spill = false;          // the disk copy, if any, belongs to the newer entry now
        if (e->pins > 0) {
          e->doomed = true;
          ++held_entries_;
        } else {
          FreeEntryLocked(e);
        }
        continue;
      }
      Key key = e->key;
      InsertIndexLocked(std::unique_ptr<Entry>(e));
      WakeWaitersLocked(key, &cbs);
    }
    d->held_.clear();
  }
  RunCallbacks(cbs);
}

size_t Store::MatchPrefix(std::span<const Key> keys) {
  std::lock_guard lock(mu_);
  size_t n = 0;
  while (n < keys.size() && index_.contains(keys[n])) ++n;
  return n;
}

size_t Store::Retain(std::span<const Key> keys) {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (; n < keys.size(); ++n) {
    auto it = index_.find(keys[n]);
    if (it == index_.end()) break;
    ++it->second->takers;
  }
  return n;
}

size_t Store::Remove(std::span<const Key> keys) {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const Key& k : keys) {
    auto it = index_.find(k);
    if (it == index_.end()) continue;
    EraseLocked(it);
    ++n;
  }
  return n;
}

size_t Store::ExpireTtl() {
  auto now = SteadyClock::now();
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (auto it = index_.begin(); it != index_.end();) {
    auto next = std::next(it);
    if (it->second->expires <= now) {
      spdlog::debug("ttl expired: key {} ({} bytes, layout '{}', producer '{}') was never taken",
                    it->first.ToHex(), it->second->meta.size, it->second->meta.layout,
                    it->second->meta.producer);
      EraseLocked(it);
      ++n;
    }
    it = next;
  }
  counters_.ttl_expired.fetch_add(n, std::memory_order_relaxed);
  return n;
}

void Store::FailAllWaiters(const std::string& why) {
  std::vector<Waiter> all;
  {
    std::lock_guard lock(mu_);
    all = waiters_.TakeAll();
  }
  for (auto& w : all) w.callback(Status::Unavailable(why));
}

ListPage Store::List(std::span<const std::byte> cursor, uint32_t limit, int tier,
                     std::span<const std::byte> prefix) {
  if (limit == 0) limit = 1000;
  std::vector<EntryInfo> found;
  {
    std::lock_guard lock(mu_);
    for (const auto& [k, e] : index_) {
      auto kb = std::span<const std::byte>(k.bytes);
      if (!cursor.empty() &&
          !std::lexicographical_compare(cursor.begin(), cursor.end(), kb.begin(), kb.end())) {
        continue;
      }
      if (prefix.size() > Key::kSize || !std::equal(prefix.begin(), prefix.end(), kb.begin())) {
        continue;
      }
      if (tier >= 0 && static_cast<int>(e->meta.tier) != tier) continue;
      found.push_back({k, e->meta});
    }
  }
  auto by_key = [](const EntryInfo& a, const EntryInfo& b) { return a.key < b.key; };
  ListPage page;
  if (found.size() > limit) {
    std::partial_sort(found.begin(), found.begin() + limit, found.end(), by_key);
    found.resize(limit);
    page.next_cursor.assign(found.back().key.bytes.begin(), found.back().key.bytes.end());
  } else {
    std::sort(found.begin(), found.end(), by_key);
  }
  page.entries = std::move(found);
  return page;
}

StoreStats Store::Stats() {
  StoreStats s;
  {
    std::lock_guard lock(mu_);
    TierStats host;
    host.tier = Tier::kHost;
    host.entries = index_.size() - spill_entries_ - device_entries_;
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
