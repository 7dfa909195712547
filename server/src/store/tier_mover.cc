// The Store's tier movement: the one demotion loop over the tiers (device ->
// host -> spill), the host -> spill move, promotion back into the host arena,
// warm restart and the shutdown flush. Disk I/O happens here with the Store's
// mutex released; the entry being moved is pinned meanwhile. The device tier's
// own moves are in device_tier.cc.
#include <algorithm>
#include <cassert>
#include <cstring>

#include <spdlog/spdlog.h>

#include "entry.h"
#include "entry_index.h"
#include "entry_list.h"
#include "entry_pool.h"
#include "kvstore/server/store.h"
#include "kvstore/units.h"
#include "store_tier.h"

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
  size_t found = 0, skipped = 0;
  if (spill_ != nullptr) {
    std::lock_guard lock(mu_);
    Status s = spill_->ForEach([&](const tiers::SpillKey& key, const EntryMeta& meta) {
      Entry e;
      e.key = key.key;
      e.ns = key.ns;
      e.set_size(meta.size);
      e.checksum = meta.checksum;
      e.set_created_unix_ms(meta.created_unix_ms);
      e.set_tier(Tier::kSpill);
      e.in_spill = true;
      if (meta.expires_unix_ms != 0) e.expiry = ExpiryFor(ExpiryFromUnixMs(meta.expires_unix_ms));
      if (index_->Contains(e.ns, e.key)) return true;
      const std::optional<uint16_t> layout = strings_->Intern(meta.layout);
      const std::optional<uint16_t> producer = strings_->Intern(meta.producer);
      if (!layout || !producer || (e.set_strings(*layout, *producer), !InsertIndexLocked(e))) {
        if (layout) strings_->Release(*layout);
        if (producer) strings_->Release(*producer);
        ++skipped;
        return true;
      }
      ++found;
      return true;
    });
    if (!s.ok()) return s.WithContext("reading the spill tier's index at start");
    if (skipped > 0) {
      spdlog::error(
          "warm restart: {} spilled entries not indexed (their values stay on disk): the entry "
          "pool is full or their layout/producer strings are past 65535 distinct ones; start "
          "with fewer spilled entries or give entries fewer distinct layout/producer strings",
          skipped);
    }
  }
  worker_ = std::thread([this] { WorkerLoop(); });
  return found;
}

void Store::StopWorker() {
  {
    std::lock_guard lock(mu_);
    stop_worker_ = true;
  }
  worker_cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

Status Store::Close() {
  StopWorker();
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
        bytes += e->size();
      } else {
        ++failed;
        spdlog::error("shutdown flush: key {} ({} bytes) not written to spill: {}", e->key.ToHex(),
                      e->size(), s.ToString());
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
  auto demotion_due = [&](const StoreTier& t) {
    return SteadyClock::now() >= t.demote_not_before && t.NeedsDemotion();
  };
  while (!stop_worker_) {
    worker_cv_.wait_for(lock, std::chrono::milliseconds(100), [&] {
      return stop_worker_ || !promotions_.empty() ||
             std::any_of(tiers_.begin(), tiers_.end(),
                         [&](const auto& t) { return demotion_due(*t); });
    });
    if (stop_worker_) break;
    if (!promotions_.empty()) {
      PromoteTask task = std::move(promotions_.front());
      promotions_.pop_front();
      lock.unlock();
      Status io_error;
      for (const Key& k : task.keys) Promote(NsKey{task.ns, k}, &io_error);
      // A failing disk is the answer, not "retry": the entries stay on disk.
      if (task.then_select && !io_error.ok()) {
        task.then_select(io_error);
      } else if (task.then_select) {  // the whole select again, not only the promoted keys
        SelectImpl(task.ns, task.select_keys, task.then_select, /*may_promote=*/false);
      }
      lock.lock();
      continue;
    }
    // Top-down: what a tier demotes lands in the one below, whose turn comes next.
    for (const auto& t : tiers_) {
      if (!demotion_due(*t)) continue;
      const uint64_t target_free = t->FreeAtLowWatermark();
      lock.unlock();
      const uint64_t freed = DemoteUntilFree(*t, target_free);
      lock.lock();
      // Nothing could go (the tier below full, everything pinned): wait for a
      // promotion or a second before trying again instead of spinning.
      if (freed == 0) t->demote_not_before = SteadyClock::now() + std::chrono::seconds(1);
    }
  }
}

std::optional<Slot> Store::AllocateHostDemoting(uint64_t size) {
  const uint64_t want = std::max<uint64_t>(size, 1);
  StoreTier& host = host_tier();
  for (size_t step = 0;; ++step) {
    {
      std::lock_guard lock(mu_);
      if (auto slot = memory_->Allocate(want)) return slot;
      if (host.below() == nullptr || step > host.entries()) return std::nullopt;
    }
    // Free bytes are not enough: a slot of this size class needs a free slot of
    // its class or a whole free run, which only demoting every entry of some
    // slab gives. So demote one at a time until the allocation itself succeeds.
    if (!DemoteOne(host, /*allow_waited=*/false) && !DemoteOne(host, /*allow_waited=*/true)) {
      std::lock_guard lock(mu_);
      return memory_->Allocate(want);
    }
  }
}

uint64_t Store::DemoteUntilFree(StoreTier& t, uint64_t bytes_free) {
  if (t.below() == nullptr) return 0;
  uint64_t freed = 0;
  for (int step = 0; step < 1'000'000; ++step) {
    uint64_t before;
    {
      std::lock_guard lock(mu_);
      if (t.free_bytes() >= bytes_free) break;
      before = t.memory().used();
    }
    // Entries nobody is waiting for go first; waited-for entries only when needed.
    if (!DemoteOne(t, /*allow_waited=*/false) && !DemoteOne(t, /*allow_waited=*/true)) break;
    std::lock_guard lock(mu_);
    const uint64_t after = t.memory().used();
    if (after < before) freed += before - after;
  }
  return freed;
}

Entry* Store::PickVictim(const StoreTier& t, const StoreTier& below, bool allow_waited,
                         std::unique_lock<std::mutex>& lock) {
  int restarts = 0;
  size_t looked = 0;
  for (Entry* c = t.lru().back(); c != nullptr;) {
    if (!c->pinned && !c->moving && (allow_waited || !waiters_.HasWaiter(c->id()))) {
      // A copy already there (a promoted spill entry) costs the tier below nothing.
      const bool copy_below = below.kind() == Tier::kSpill && c->in_spill;
      if (!below.quota_on_move_in() || copy_below ||
          TierQuotaAllowsLocked(c->ns, below.kind(), c->size())) {
        return c;
      }
    }
    if (++looked % kVictimSliceEntries != 0) {
      c = t.lru().Before(c);
      continue;
    }
    // A long run of entries that cannot go (pinned, moving, waited for): let
    // other calls in. A pin keeps `c` alive meanwhile; the walk goes on from
    // it while it is where it was, and starts over (twice at most) when it
    // was taken, removed, moved down or touched (now in front).
    counts_->Pin(c);
    lock.unlock();
    if (slice_hook_for_tests_) slice_hook_for_tests_();
    lock.lock();
    const bool in_place = c->indexed && c->tier() == t.kind() && c != t.lru().front();
    Entry* next = in_place ? t.lru().Before(c) : t.lru().back();
    UnpinLocked(c);  // frees `c` if it was doomed meanwhile
    if (!in_place && ++restarts > 2) return nullptr;
    c = next;
  }
  return nullptr;
}

bool Store::DemoteOne(StoreTier& t, bool allow_waited) {
  const StoreTier* below = t.below();
  if (below == nullptr) return false;
  Entry* e = nullptr;
  {
    std::unique_lock lock(mu_);
    e = PickVictim(t, *below, allow_waited, lock);
    if (e == nullptr) return false;
    counts_->Pin(e);  // the bytes stay put while they are copied down
    e->moving = true;
  }
  switch (t.kind()) {
    case Tier::kDevice:
      return MoveDeviceToHost(e, /*for_delivery=*/false);
    case Tier::kHost:
      return MoveHostToSpill(e);
    case Tier::kSpill:
      break;
  }
  assert(false && "the spill tier has no tier below");
  return false;
}

bool Store::MoveHostToSpill(Entry* e) {
  EntryMeta meta;
  {
    std::lock_guard lock(mu_);
    meta = MetaLocked(e);
  }
  Status s;
  if (!e->in_spill) {
    auto start = SteadyClock::now();
    s = spill_->Put(tiers::SpillKey(e->key, e->ns), meta, e->bytes());
    counters_.spill_write_micros.fetch_add(MicrosSince(start), std::memory_order_relaxed);
    if (s.ok()) counters_.spill_write_bytes.fetch_add(e->size(), std::memory_order_relaxed);
  }
  std::lock_guard lock(mu_);
  if (!s.ok()) {
    counters_.spill_errors.fetch_add(1, std::memory_order_relaxed);
    if (s.code() != StatusCode::kResourceExhausted) {
      spdlog::warn("demotion of key {} ({} bytes) to spill failed: {}", e->key.ToHex(), e->size(),
                   s.ToString());
    }
    UnpinAfterMoveLocked(e);
    return false;  // spill full or failing: stop demoting
  }
  // A doomed entry (removed or taken while being written) drops the copy too
  // when its last pin goes; a claimed one or one being read keeps its slot.
  e->in_spill = true;
  if (e->indexed && counts_->pins(e) == 1 && e->in_host()) {
    UnlinkLocked(e);
    memory_->Free(HostSlotLocked(e));
    e->clear_place();
    e->set_tier(Tier::kSpill);
    LinkLocked(e);
    counters_.evictions.fetch_add(1, std::memory_order_relaxed);
  }
  UnpinAfterMoveLocked(e);
  return true;
}

std::optional<Slot> Store::SwapIn(Entry* e, const NsKey& key, uint64_t size, Status* read_error) {
  const tiers::SpillKey sk(key.key, key.ns);
  std::vector<std::byte> temp(size);
  EntryMeta meta;
  Status s = spill_->Get(sk, temp, &meta);
  if (!s.ok()) {  // nothing moved yet: Promote reports the disk's error
    *read_error = std::move(s);
    return std::nullopt;
  }
  // In durable mode an acknowledged value never leaves the disk: the swap then
  // only succeeds if room appears without giving up this value's disk copy.
  const bool keep_disk_copy = options_.durability == Durability::kSync;
  if (keep_disk_copy) {
    std::optional<Slot> slot = AllocateHostDemoting(size);
    if (!slot) return std::nullopt;
    std::memcpy(slot->data, temp.data(), size);
    slot->size = size;
    counters_.spill_read_bytes.fetch_add(size, std::memory_order_relaxed);
    return slot;
  }
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

bool Store::Promote(const NsKey& key, Status* io_error) {
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
    counts_->Pin(e);
    size = e->size();
    // A device-tier entry is staged into a host slot to be served.
    if (e->in_device()) device_resident = true;
  }
  if (device_resident) return MoveDeviceToHost(e, /*for_delivery=*/true);
  Status s;
  std::optional<Slot> slot = AllocateHostDemoting(size);
  if (!slot) {
    // Both tiers full: nothing can be demoted to make room. Swap instead: lift
    // this value out of spill through a temporary buffer, which frees its disk
    // space for the least-recently-used host entry, whose slot it then takes.
    // A failed read is the answer (the disk's error, not "no memory").
    slot = SwapIn(e, key, size, &s);
    if (slot) return InstallPromoted(e, key, *slot);
    if (s.ok()) s = Status::ResourceExhausted("no host memory free to promote the entry into");
  } else {
    slot->size = size;
    auto start = SteadyClock::now();
    EntryMeta meta;
    s = spill_->Get(tiers::SpillKey(key.key, key.ns), {slot->data, size}, &meta);
    counters_.spill_read_micros.fetch_add(MicrosSince(start), std::memory_order_relaxed);
    if (s.ok()) counters_.spill_read_bytes.fetch_add(size, std::memory_order_relaxed);
  }
  if (!s.ok()) {
    std::lock_guard lock(mu_);
    if (slot) memory_->Free(*slot);
    const bool lost = s.code() == StatusCode::kDataLoss || s.code() == StatusCode::kNotFound;
    if (lost) {
      // The disk copy is gone or corrupt: the entry is lost, never served.
      counters_.checksum_failures.fetch_add(s.code() == StatusCode::kDataLoss,
                                            std::memory_order_relaxed);
      spdlog::error("spill entry for key {} is unreadable ({}); it was removed", key.key.ToHex(),
                    s.ToString());
      e->in_spill = false;  // the spill tier dropped it already
    } else {
      spdlog::warn("promotion of key {} failed: {}", key.key.ToHex(), s.ToString());
      if (s.code() != StatusCode::kResourceExhausted) {
        counters_.spill_errors.fetch_add(1, std::memory_order_relaxed);
        if (io_error && io_error->ok()) *io_error = s;
      }
    }
    const bool erase = lost && e->indexed;  // an indexed entry is never doomed: survives the unpin
    UnpinAfterMoveLocked(e);
    if (erase && index_->Find(key.ns, key.key) == e) EraseLocked(e);
    return false;
  }
  return InstallPromoted(e, key, *slot);
}

bool Store::InstallPromoted(Entry* e, const NsKey& key, const Slot& slot) {
  Callbacks cbs;
  {
    std::lock_guard lock(mu_);
    if (e->doomed || !e->indexed) {  // removed while being read back
      memory_->Free(slot);
      UnpinAfterMoveLocked(e);
      return false;
    }
    UnpinAfterMoveLocked(e);  // indexed: never freed here
    UnlinkLocked(e);
    e->set_host_slot(slot.data, slot.size_class);
    e->set_tier(Tier::kHost);
    LinkLocked(e);
    counters_.promotions.fetch_add(1, std::memory_order_relaxed);
    WakeWaitersLocked(key, &cbs);
  }
  RunCallbacks(cbs);
  return true;
}

}  // namespace kvstore::server
