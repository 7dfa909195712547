// The Store's tier movement: demotion to spill, promotion back into the host
// arena, warm restart and the shutdown flush. Disk I/O happens here with the
// Store's mutex released; the entry being moved is pinned meanwhile. The device
// tier's moves are in device_tier.cc.
#include <cstring>

#include <spdlog/spdlog.h>

#include "entry.h"
#include "entry_index.h"
#include "entry_list.h"
#include "kvstore/server/store.h"
#include "kvstore/units.h"

namespace kvstore::server {

using SteadyClock = std::chrono::steady_clock;

namespace {

uint64_t MicrosSince(SteadyClock::time_point t) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() - t).count());
}

SteadyClock::time_point ExpiryFromUnixMs(uint64_t expires_unix_ms) {
  if (expires_unix_ms == 0) return SteadyClock::time_point::max();
  auto now_unix = std::chrono::system_clock::now();
  auto when = std::chrono::system_clock::time_point(std::chrono::milliseconds(expires_unix_ms));
  return SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(when - now_unix);
}

}  // namespace

Result<size_t> Store::Open() {
  size_t found = 0;
  if (spill_ != nullptr) {
    std::lock_guard lock(mu_);
    Status s = spill_->ForEach([&](const tiers::SpillKey& key, const EntryMeta& meta) {
      auto e = std::make_unique<Entry>();
      e->key = key.key;
      e->ns = key.ns;
      e->meta.size = meta.size;
      e->meta.checksum = meta.checksum;
      e->meta.created_unix_ms = meta.created_unix_ms;
      e->meta.expires_unix_ms = meta.expires_unix_ms;
      e->meta.tier = Tier::kSpill;
      e->in_spill = true;
      e->expires = ExpiryFromUnixMs(meta.expires_unix_ms);
      if (!index_->Contains(e->ns, e->key)) {
        e->meta.layout = strings_->Intern(meta.layout);
        e->meta.producer = strings_->Intern(meta.producer);
        InsertIndexLocked(std::move(e));
        ++found;
      }
      return true;
    });
    if (!s.ok()) return s.WithContext("reading the spill tier's index at start");
  }
  worker_ = std::thread([this] { WorkerLoop(); });
  return found;
}

Status Store::Close() {
  {
    std::lock_guard lock(mu_);
    stop_worker_ = true;
  }
  worker_cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  if (spill_ == nullptr) return Status::Ok();
  size_t written = 0, failed = 0;
  uint64_t bytes = 0;
  if (options_.flush_on_shutdown) {
    // No connection is left: nothing else touches the index now.
    std::vector<std::pair<Entry*, EntryMeta>> todo;
    {
      std::lock_guard lock(mu_);
      index_->ForEach([&](Entry* e) {
        if (e->in_host() && !e->in_spill) todo.emplace_back(e, MetaLocked(e));
      });
    }
    failed += FlushDeviceToSpill(&written, &bytes);
    for (auto& [e, meta] : todo) {
      Status s = spill_->Put(tiers::SpillKey(e->key, e->ns), meta, e->bytes());
      if (s.ok()) {
        e->in_spill = true;
        ++written;
        bytes += e->meta.size;
      } else {
        ++failed;
        spdlog::error("shutdown flush: key {} ({} bytes) not written to spill: {}", e->key.ToHex(),
                      e->meta.size, s.ToString());
      }
    }
  }
  Status s = spill_->Flush();
  spdlog::info("shutdown flush: {} entries ({}) written to spill{}; spill tier {}", written,
               FormatSize(bytes), failed ? ", " + std::to_string(failed) + " FAILED" : "",
               s.ok() ? "durable" : "flush failed: " + s.ToString());
  if (failed > 0) return Status::Internal(std::to_string(failed) + " entries could not be flushed");
  return s;
}

uint64_t Store::HostFreeLocked() const { return memory_->capacity() - memory_->used(); }

void Store::QueuePromotionLocked(NamespaceId ns, std::vector<Key> keys,
                                 DeliveryCallback then_select, std::vector<Key> select_keys) {
  for (const Key& k : keys) {
    if (Entry* e = index_->Find(ns, k)) e->moving = true;  // not demoted meanwhile
  }
  promotions_.push_back({ns, std::move(keys), std::move(then_select), std::move(select_keys)});
  worker_cv_.notify_one();
}

void Store::WorkerLoop() {
  std::unique_lock lock(mu_);
  // After a demotion pass that freed nothing (spill full, everything pinned),
  // wait for a promotion or a second before trying again instead of spinning.
  auto demote_not_before = SteadyClock::now();
  auto device_demote_not_before = SteadyClock::now();
  while (!stop_worker_) {
    worker_cv_.wait_for(lock, std::chrono::milliseconds(100), [&] {
      return stop_worker_ || !promotions_.empty() ||
             (SteadyClock::now() >= device_demote_not_before && DeviceOverHighWatermarkLocked()) ||
             (spill_ != nullptr && SteadyClock::now() >= demote_not_before &&
              static_cast<double>(memory_->used()) >
                  options_.high_watermark * static_cast<double>(memory_->capacity()));
    });
    if (stop_worker_) break;
    if (!promotions_.empty()) {
      PromoteTask task = std::move(promotions_.front());
      promotions_.pop_front();
      lock.unlock();
      for (const Key& k : task.keys) Promote(NsKey{task.ns, k});
      // The whole select again, not only the keys that had to be brought in.
      if (task.then_select) {
        SelectImpl(task.ns, task.select_keys, task.then_select, /*may_promote=*/false);
      }
      lock.lock();
      continue;
    }
    // Device first: what it demotes lands in host, which the pass below then relieves.
    if (SteadyClock::now() >= device_demote_not_before && DeviceOverHighWatermarkLocked()) {
      uint64_t target_free = FreeAtLowWatermark(device_->capacity());
      lock.unlock();
      uint64_t freed = DemoteDeviceUntilFree(target_free);
      lock.lock();
      if (freed == 0) device_demote_not_before = SteadyClock::now() + std::chrono::seconds(1);
    }
    if (spill_ == nullptr) continue;
    uint64_t cap = memory_->capacity();
    if (SteadyClock::now() >= demote_not_before &&
        static_cast<double>(memory_->used()) > options_.high_watermark * static_cast<double>(cap)) {
      uint64_t target_free = FreeAtLowWatermark(cap);
      lock.unlock();
      uint64_t freed = DemoteUntilFree(target_free);
      lock.lock();
      if (freed == 0) demote_not_before = SteadyClock::now() + std::chrono::seconds(1);
    }
  }
}

std::optional<Slot> Store::AllocateHostDemoting(uint64_t size) {
  const uint64_t want = std::max<uint64_t>(size, 1);
  for (size_t step = 0;; ++step) {
    {
      std::lock_guard lock(mu_);
      if (auto slot = memory_->Allocate(want)) return slot;
      if (spill_ == nullptr || step > lists_->host_lru.size()) return std::nullopt;
    }
    // Free bytes are not enough: a slot of this size class needs a free slot of
    // its class or a whole free run, which only demoting every entry of some
    // slab gives. So demote one at a time until the allocation itself succeeds.
    if (!DemoteOne(/*allow_waited=*/false) && !DemoteOne(/*allow_waited=*/true)) {
      std::lock_guard lock(mu_);
      return memory_->Allocate(want);
    }
  }
}

uint64_t Store::DemoteUntilFree(uint64_t bytes_free) {
  if (spill_ == nullptr) return 0;
  uint64_t freed = 0;
  for (int step = 0; step < 1'000'000; ++step) {
    {
      std::lock_guard lock(mu_);
      if (HostFreeLocked() >= bytes_free) break;
    }
    uint64_t before;
    {
      std::lock_guard lock(mu_);
      before = memory_->used();
    }
    // Entries nobody is waiting for go first; waited-for entries only when needed.
    if (!DemoteOne(/*allow_waited=*/false) && !DemoteOne(/*allow_waited=*/true)) break;
    std::lock_guard lock(mu_);
    if (memory_->used() < before) freed += before - memory_->used();
  }
  return freed;
}

bool Store::DemoteOne(bool allow_waited) {
  Entry* e = nullptr;
  EntryMeta meta;
  {
    std::lock_guard lock(mu_);
    for (Entry* c = lists_->host_lru.back(); c != nullptr; c = LruList::Before(c)) {
      if (c->pins > 0 || c->moving) continue;
      if (!allow_waited && waiters_.HasWaiter(c->id())) continue;
      if (!c->in_spill && !TierQuotaAllowsLocked(c->ns, Tier::kSpill, c->meta.size)) continue;
      e = c;
      break;
    }
    if (e == nullptr) return false;
    ++e->pins;  // the bytes stay put while they are written out
    meta = MetaLocked(e);
  }
  Status s;
  if (!e->in_spill) {
    auto start = SteadyClock::now();
    s = spill_->Put(tiers::SpillKey(e->key, e->ns), meta, e->bytes());
    counters_.spill_write_micros.fetch_add(MicrosSince(start), std::memory_order_relaxed);
    if (s.ok()) counters_.spill_write_bytes.fetch_add(e->meta.size, std::memory_order_relaxed);
  }
  std::lock_guard lock(mu_);
  --e->pins;
  if (!s.ok()) {
    counters_.spill_errors.fetch_add(1, std::memory_order_relaxed);
    if (s.code() != StatusCode::kResourceExhausted) {
      spdlog::warn("demotion of key {} ({} bytes) to spill failed: {}", e->key.ToHex(),
                   e->meta.size, s.ToString());
    }
    if (e->doomed && e->pins == 0) {
      --held_entries_;
      FreeEntryLocked(e);
    }
    return false;  // spill full or failing: stop demoting
  }
  e->in_spill = true;
  if (e->doomed) {  // removed or taken while being written: drop the copy too
    if (e->pins == 0) {
      --held_entries_;
      FreeEntryLocked(e);
    }
    return true;
  }
  if (!e->indexed || e->pins > 0 || !e->in_host()) return true;  // claimed or being read: keep
  UnlinkLocked(e);
  memory_->Free(e->slot());
  e->clear_place();
  e->meta.tier = Tier::kSpill;
  LinkLocked(e);
  counters_.evictions.fetch_add(1, std::memory_order_relaxed);
  return true;
}

std::optional<Slot> Store::SwapIn(Entry* e, const NsKey& key, uint64_t size) {
  const tiers::SpillKey sk(key.key, key.ns);
  std::vector<std::byte> temp(size);
  EntryMeta meta;
  Status s = spill_->Get(sk, temp, &meta);
  if (!s.ok()) return std::nullopt;  // Promote's own read reports the failure
  if (!spill_->Delete(sk).ok()) return std::nullopt;
  {
    std::lock_guard lock(mu_);
    e->in_spill = false;
  }
  std::optional<Slot> slot = AllocateHostDemoting(size);
  if (!slot) {
    // Could not make room after all: the value goes back to disk as it was.
    if (spill_->Put(sk, meta, temp).ok()) {
      std::lock_guard lock(mu_);
      e->in_spill = true;
    } else {
      spdlog::error(
          "key {}: could not put the value back on spill after a failed swap; "
          "it is lost",
          key.key.ToHex());
    }
    return std::nullopt;
  }
  std::memcpy(slot->data, temp.data(), size);
  slot->size = size;
  counters_.spill_read_bytes.fetch_add(size, std::memory_order_relaxed);
  return slot;
}

bool Store::Promote(const NsKey& key) {
  Entry* e = nullptr;
  uint64_t size = 0;
  bool device_resident = false;
  {
    std::lock_guard lock(mu_);
    e = index_->Find(key.ns, key.key);
    if (e == nullptr) return false;
    if (e->in_host()) {
      e->moving = false;
      return true;
    }
    ++e->pins;
    size = e->meta.size;
    // A device-tier entry is staged into a host slot to be served.
    if (e->in_device()) device_resident = true;
  }
  if (device_resident) return MoveDeviceToHost(e, /*for_delivery=*/true);
  std::optional<Slot> slot = AllocateHostDemoting(size);
  if (!slot) {
    // Both tiers full: nothing can be demoted to make room. Swap instead: lift
    // this value out of spill through a temporary buffer, which frees its disk
    // space for the least-recently-used host entry, whose slot it then takes.
    slot = SwapIn(e, key, size);
    if (slot) return InstallPromoted(e, key, *slot);
  }
  Status s = slot ? Status::Ok()
                  : Status::ResourceExhausted("no host memory free to promote the entry into");
  if (slot) {
    slot->size = size;
    auto start = SteadyClock::now();
    EntryMeta meta;
    s = spill_->Get(tiers::SpillKey(key.key, key.ns), {slot->data, size}, &meta);
    counters_.spill_read_micros.fetch_add(MicrosSince(start), std::memory_order_relaxed);
    if (s.ok()) counters_.spill_read_bytes.fetch_add(size, std::memory_order_relaxed);
  }
  if (!s.ok()) {
    std::lock_guard lock(mu_);
    --e->pins;
    e->moving = false;
    if (slot) memory_->Free(*slot);
    if (s.code() == StatusCode::kDataLoss || s.code() == StatusCode::kNotFound) {
      // The disk copy is gone or corrupt: the entry is lost, never served.
      counters_.checksum_failures.fetch_add(s.code() == StatusCode::kDataLoss,
                                            std::memory_order_relaxed);
      spdlog::error("spill entry for key {} is unreadable ({}); it was removed", key.key.ToHex(),
                    s.ToString());
      e->in_spill = false;  // the spill tier dropped it already
      if (e->indexed) {
        if (index_->Find(key.ns, key.key) == e) EraseLocked(e);
      } else if (e->doomed && e->pins == 0) {
        --held_entries_;
        FreeEntryLocked(e);
      }
    } else {
      spdlog::warn("promotion of key {} failed: {}", key.key.ToHex(), s.ToString());
      if (e->doomed && e->pins == 0) {
        --held_entries_;
        FreeEntryLocked(e);
      }
    }
    return false;
  }
  return InstallPromoted(e, key, *slot);
}

bool Store::InstallPromoted(Entry* e, const NsKey& key, const Slot& slot) {
  Callbacks cbs;
  {
    std::lock_guard lock(mu_);
    --e->pins;
    e->moving = false;
    if (e->doomed || !e->indexed) {  // removed while being read back
      memory_->Free(slot);
      if (e->doomed && e->pins == 0) {
        --held_entries_;
        FreeEntryLocked(e);
      }
      return false;
    }
    UnlinkLocked(e);
    e->set_slot(slot);
    e->meta.tier = Tier::kHost;
    LinkLocked(e);
    counters_.promotions.fetch_add(1, std::memory_order_relaxed);
    WakeWaitersLocked(key, &cbs);
  }
  RunCallbacks(cbs);
  return true;
}

}  // namespace kvstore::server
