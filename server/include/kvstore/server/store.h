// The store: index of committed entries, their memory, waiters and TTLs.
//
// Entry life: Reserve (slot allocated, invisible) -> bytes arrive -> Commit
// (checksum verified, visible atomically, waiters woken) -> Select pins it
// while bytes go out / DropSelect claims it (invisible to everyone else) ->
// Delivery::Finish frees it (delivered) or puts it back (delivery failed).
// TTL expiry and Remove drop committed entries; a pinned entry is freed when
// its last reader finishes.
//
// Tiers: committed entries live in the host tier (slots of the registered
// arena) or, with a spill tier, on disk. Each tier is one instance of the same
// type (its LRU, entry and byte counts, watermarks and the TierMemory behind
// it), kept top-down: device -> host -> spill. A worker thread walks them top
// down and demotes least-recently used, unpinned entries of any tier past its
// high watermark into the tier below, down to its low watermark (in every tier
// entries some drop_select is waiting for go last), and promotes spilled
// entries back before they are served: transports only serve registered memory.
// An insert that finds the host tier full demotes inline before giving up. A
// spilled entry keeps its disk copy after promotion until it is taken, so a
// second demotion costs nothing and a restart finds it.
//
// Device tier (optional, above host; DeviceMemory, a GPU arena in the daemon):
// transports only serve host memory, so inserts still land in host slots
// (Reserve/Commit are unchanged for callers). Commit, after the checksum and
// before the entry becomes visible, copies the value into the device tier when
// a device slot is free and frees its host slot; an entry some drop_select is
// already waiting for stays in host (it is about to leave). The copy runs on
// the committing thread without the mutex. The worker demotes least-recently
// used device entries to host slots when the device tier passes the same high
// watermark (down to the low one), demoting host entries to spill first when
// the host tier has no room, so entries flow device -> host -> spill. A select
// or drop_select of a device-resident entry goes through the worker like a
// spilled one: it is copied into a host slot (a staged transfer, counted in
// staged_transfers), stays in the host tier and is served from there. The
// shutdown flush writes device entries to spill too.
//
// Namespaces (tenants): every call that names keys takes a NamespaceId
// (default kDefaultNamespace, 0). The index is keyed by (namespace, key): the
// same key in two namespaces is two entries, and no call for one namespace
// sees, waits for, takes or removes another's. Each namespace may have a quota
// (SetNamespaceQuota): host bytes and entries refuse inserts with
// ResourceExhausted naming the namespace and the quota; device bytes keep its
// values out of the device tier once reached, spill bytes keep them from being
// demoted to spill; waiters refuse further drop_selects. List and Stats look at
// one namespace, or at all of them with kAllNamespaces (admin).
//
// Thread-safety: all public methods are thread-safe (one mutex). Callbacks
// are never run under the mutex. Disk I/O and device copies never happen
// under the mutex.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "kvstore/key.h"
#include "kvstore/server/device_memory.h"
#include "kvstore/server/host_memory.h"
#include "kvstore/server/ns_key.h"
#include "kvstore/server/server_options.h"
#include "kvstore/server/waiters.h"
#include "kvstore/status.h"
#include "kvstore/tiers/durable_writer.h"
#include "kvstore/tiers/spill_store.h"
#include "kvstore/types.h"

#include <condition_variable>
#include <deque>
#include <thread>

namespace kvstore::server {

class Store;
struct Entry;
class EntryPool;
class EntryCounts;
class TtlBuckets;
class EntryIndex;
class StringTable;
class StoreTier;

struct DeliveredEntry {
  Key key;
  EntryMeta meta;
  std::span<const std::byte> bytes;  // valid until the Delivery finishes
};

// Entries handed to one caller for sending. Finish exactly once (the
// destructor finishes with delivered=false if the caller did not).
class Delivery {
 public:
  ~Delivery();
  Delivery(const Delivery&) = delete;
  Delivery& operator=(const Delivery&) = delete;

  const std::vector<DeliveredEntry>& entries() const { return entries_; }
  uint64_t total_bytes() const;
  bool drop() const { return drop_; }
  // drop_select: delivered frees the entries, otherwise they return to the
  // store for the next taker. select: releases the read pins.
  void Finish(bool delivered);

 private:
  friend class Store;
  Delivery(Store* store, bool drop) : store_(store), drop_(drop) {}
  Store* store_;
  bool drop_;
  bool finished_ = false;
  std::vector<Entry*> held_;    // owned: claimed (drop) or pinned (select)
  std::vector<Entry*> shared_;  // drop_select of an entry with more takers due: pinned, stays
  std::vector<DeliveredEntry> entries_;
};

// An insert in progress: memory reserved, bytes not yet in, invisible.
struct Reservation {
  Key key;
  NamespaceId ns = kDefaultNamespace;
  EntryMeta meta;
  Slot slot;
  std::chrono::milliseconds ttl{0};
  bool exists = false;  // the key was already stored: nothing reserved, drain the bytes
  std::span<std::byte> bytes() const { return {slot.data, slot.size}; }
};

// Limits of one namespace. 0 = unlimited (the default for every field).
struct NamespaceQuota {
  uint64_t host_bytes = 0;    // value bytes in the host tier, inserts in flight included
  uint64_t device_bytes = 0;  // value bytes in the device tier
  uint64_t spill_bytes = 0;   // value bytes in the spill tier
  uint64_t entries = 0;       // entries in every tier, inserts in flight included
  uint64_t waiters = 0;       // pending drop_selects
};

// What one namespace holds and did (for stats and per-namespace metrics).
struct NamespaceUsage {
  NamespaceId ns = kDefaultNamespace;
  NamespaceQuota quota;
  uint64_t entries = 0;                                        // indexed entries, every tier
  uint64_t host_bytes = 0, device_bytes = 0, spill_bytes = 0;  // value bytes per tier
  uint64_t host_slot_bytes = 0;                       // host slot capacity its entries take
  uint64_t reserved_entries = 0, reserved_bytes = 0;  // inserts in flight
  uint64_t waiters = 0;
  uint64_t inserts = 0, refused_inserts = 0, hits = 0, misses = 0, ttl_expired = 0;
};

struct StoreCounters {
  std::atomic<uint64_t> inserts{0};
  std::atomic<uint64_t> hits{0};
  std::atomic<uint64_t> misses{0};
  std::atomic<uint64_t> ttl_expired{0};
  std::atomic<uint64_t> ttl_examined{0};  // bucket records expiry looked at: expired + stale
  std::atomic<uint64_t> evictions{0};
  std::atomic<uint64_t> promotions{0};
  std::atomic<uint64_t> refused_inserts{0};
  std::atomic<uint64_t> checksum_failures{0};
  std::atomic<uint64_t> redeliveries{0};  // drop_select deliveries that failed and were put back
  std::atomic<uint64_t> inline_demotions{0};  // demotions an insert had to wait for
  std::atomic<uint64_t> spill_write_bytes{0};
  std::atomic<uint64_t> spill_read_bytes{0};
  std::atomic<uint64_t> spill_write_micros{0};
  std::atomic<uint64_t> spill_read_micros{0};
  std::atomic<uint64_t> spill_errors{0};
  std::atomic<uint64_t> device_admissions{0};  // commits whose value went into the device tier
  std::atomic<uint64_t> device_demotions{0};   // device -> host moves to make room
  std::atomic<uint64_t> staged_transfers{0};  // device -> host copies to serve a select/drop_select
  std::atomic<uint64_t> device_errors{0};     // failed device copies
};

class Store {
 public:
  // `spill` may be null (no spill tier); `device` may be null (no device tier).
  Store(const StoreOptions& options, std::unique_ptr<HostMemory> memory,
        std::unique_ptr<tiers::SpillStore> spill = nullptr,
        std::unique_ptr<DeviceMemory> device = nullptr);
  ~Store();

  // Finds the spill tier's entries again (warm restart) and starts the tier
  // worker. Returns how many entries were found.
  Result<size_t> Open();
  // Stops the worker; with flush_on_shutdown, writes every host and device
  // entry that has no disk copy to spill and makes the spill tier durable.
  Status Close();

  // Reserves memory for `meta.size` bytes under `key` in namespace `ns`.
  // ResourceExhausted when the tier is full or a quota of `ns` is reached (the
  // message names which); InvalidArgument for a value over the size limit.
  Result<Reservation> Reserve(const Key& key, const EntryMeta& meta, std::chrono::milliseconds ttl,
                              NamespaceId ns = kDefaultNamespace);
  // Verifies the checksum of the reserved bytes and makes the entry visible (in
  // the reservation's namespace). `computed_checksum` is the XXH3-64 of the
  // bytes when the caller hashed them as they arrived (nullopt: hash them
  // here). Returns true when stored, false when another insert of the same key
  // won. DataLoss (and the reservation freed) when the checksum does not match.
  Result<bool> Commit(Reservation&& r, std::optional<uint64_t> computed_checksum = std::nullopt);
  void Abort(Reservation&& r);

  // Batched insert (a prefill engine publishing many blocks in one request):
  // ReserveMany reserves every value under one hold of the mutex where it can
  // (those needing demotion, over a quota or the size limit go through Reserve
  // and get its errors), one result per key in order; CommitMany commits them
  // (checksums[i]: as Commit's computed_checksum; missing = hash here) and
  // makes them visible under one hold. Each reservation must still be
  // committed or aborted. REQUIRES: keys.size() == metas.size() (otherwise
  // every result is InvalidArgument).
  std::vector<Result<Reservation>> ReserveMany(std::span<const Key> keys,
                                               std::span<const EntryMeta> metas,
                                               std::chrono::milliseconds ttl,
                                               NamespaceId ns = kDefaultNamespace);
  std::vector<Result<bool>> CommitMany(std::span<Reservation> reservations,
                                       std::span<const std::optional<uint64_t>> checksums = {});

  // Resolves at once: the callback gets a Delivery of pinned entries, or
  // NotFound naming the first missing key.
  void Select(std::span<const Key> keys, const DeliveryCallback& callback,
              NamespaceId ns = kDefaultNamespace);
  // Resolves when every key is committed and unclaimed; until then the call
  // waits. Returns the waiter id to cancel it with, or 0 when already resolved
  // (or refused: ResourceExhausted when `ns` has reached its waiters quota).
  uint64_t DropSelect(std::span<const Key> keys, DeliveryCallback callback,
                      NamespaceId ns = kDefaultNamespace);
  // True when the waiter was still pending and is now gone (its callback will
  // not run); false when it already resolved.
  bool CancelWaiter(uint64_t id);

  size_t MatchPrefix(std::span<const Key> keys, NamespaceId ns = kDefaultNamespace);
  // Adds a pending taker to each leading stored key; returns how many.
  size_t Retain(std::span<const Key> keys, NamespaceId ns = kDefaultNamespace);
  size_t Remove(std::span<const Key> keys, NamespaceId ns = kDefaultNamespace);
  // Entries of `ns` in key order after `cursor` (exclusive), at most `limit`;
  // `prefix` filters. With ns == kAllNamespaces (admin): every namespace's
  // entries in (namespace, key) order, the cursor is 4 bytes of namespace (big
  // endian) then the key, and `namespaces`, when given, receives each entry's
  // namespace (parallel to page.entries). Walks the index in slices that
  // release the mutex: an entry stored throughout the call is listed, one
  // inserted or removed meanwhile may or may not be.
  ListPage List(std::span<const std::byte> cursor, uint32_t limit, int tier,
                std::span<const std::byte> prefix, NamespaceId ns = kDefaultNamespace,
                std::vector<NamespaceId>* namespaces = nullptr);
  // tiers: host first, then spill and device when they exist (find a row by its tier).
  StoreStats Stats();
  // One namespace's share: rows count its entries and value bytes, used_bytes
  // its host slots, capacity_bytes its quota (the tier's capacity without one);
  // inserts, hits, misses, refused_inserts, ttl_expired and waiters are its own.
  // kAllNamespaces: the same as Stats().
  StoreStats Stats(NamespaceId ns);
  const StoreCounters& counters() const { return counters_; }
  // The most entries any one index slot chain holds (a health check of the
  // index hash: a handful with any keys, never proportional to their number).
  size_t IndexLongestChain() const;
  // What the index costs in daemon memory beside the values.
  struct IndexMemory {
    uint64_t entries = 0;       // entries held (indexed, claimed or doomed)
    uint64_t entry_bytes = 0;   // the entry pool's memory (every entry it made room for)
    uint64_t table_bytes = 0;   // the hash table(s) of entry ids
    uint64_t ttl_bytes = 0;     // the expiry buckets' records
    uint64_t ttl_records = 0;   // records in the expiry buckets (some may be stale)
    uint64_t count_bytes = 0;   // pins and extra takers of the entries that have them
    uint64_t string_count = 0;  // distinct layout and producer strings
    uint64_t total_bytes() const { return entry_bytes + table_bytes + ttl_bytes + count_bytes; }
    // total_bytes / entries (0 when empty).
    double bytes_per_entry() const {
      return entries == 0 ? 0.0 : static_cast<double>(total_bytes()) / static_cast<double>(entries);
    }
  };
  IndexMemory IndexMemoryStats() const;

  // Quotas: take effect for the next call (what a namespace holds beyond a new,
  // lower quota stays). A quota of all zeros removes the limits.
  void SetNamespaceQuota(NamespaceId ns, const NamespaceQuota& quota);
  NamespaceQuota GetNamespaceQuota(NamespaceId ns) const;
  // Every namespace that holds, held or has a quota, by id.
  std::vector<NamespaceUsage> Namespaces() const;
  NamespaceUsage NamespaceUsageOf(NamespaceId ns) const;

  // Drops committed entries whose TTL passed (an entry being read is freed when
  // its last reader finishes). Costs what expires, not what is stored; works in
  // slices that release the mutex. Returns how many. Entries expire up to
  // 16 ms after their deadline plus the caller's period.
  size_t ExpireTtl();
  // Fails every pending waiter with Unavailable.
  void FailAllWaiters(const std::string& why);
  std::string DescribeMemory() const;
  bool has_device_tier() const { return device_ != nullptr; }
  // The device tier's line for the start-up log; empty without one.
  std::string DescribeDevice() const;

  // Long work (List's walk of the index, the demotion's choice of victims)
  // runs in slices that release the mutex; at most this many index slots or
  // LRU entries are looked at per hold.
  static constexpr size_t kListSliceSlots = 4096;
  static constexpr size_t kVictimSliceEntries = 1024;
  // TEST ONLY: runs between two slices of long work, with the mutex released
  // (on the calling thread). Set before the Store is shared between threads.
  void SetSliceHookForTests(std::function<void()> hook) { slice_hook_for_tests_ = std::move(hook); }
  // Runs in Commit after durable mode's write-through, before the entry is installed.
  void SetCommitHookForTests(std::function<void()> hook) {
    commit_hook_for_tests_ = std::move(hook);
  }

 private:
  friend class Delivery;
  using Callbacks = std::vector<std::pair<DeliveryCallback, std::unique_ptr<Delivery>>>;

  void FinishDelivery(Delivery* d, bool delivered);
  // Commit in two steps (CommitMany shares them): checks the checksum (aborting
  // `r` on a mismatch) and builds the entry; then, under the mutex, makes it
  // visible (false when the key was committed meanwhile) and wakes waiters.
  // The entry is built outside the pool (no mutex held) and copied into it
  // when installed. InstallLocked refuses (ResourceExhausted, the slot freed)
  // when the entry pool or the layout/producer string table is full.
  Result<Entry> PrepareCommit(Reservation& r, std::optional<uint64_t> computed_checksum);
  Result<bool> InstallLocked(Entry& e, std::optional<DeviceSlot> up, const Reservation& r,
                             Callbacks* cbs);
  // Durable mode (durable_commit.cc): writes a prepared entry through to spill
  // before it is installed; on an error frees its slot and reservation.
  Status WriteThroughAtCommit(Entry& e, const Reservation& r);
  // The write-through of `key` is over (its entry is being installed, or it failed).
  void EndWriteThroughLocked(const NsKey& key);
  // REQUIRES mu_ held: some tier needs the worker to demote.
  bool WorkerWantedLocked() const;
  void SelectImpl(NamespaceId ns, std::span<const Key> keys, const DeliveryCallback& callback,
                  bool may_promote);

  // Tier movement (tier_mover.cc). The tiers are instances (StoreTier), kept
  // top-down in tiers_; one loop demotes from any tier into the one below.
  StoreTier* TierOf(Tier kind) const { return by_kind_[static_cast<int>(kind)]; }
  StoreTier& host_tier() const { return *TierOf(Tier::kHost); }
  struct PromoteTask {
    NamespaceId ns = kDefaultNamespace;
    std::vector<Key> keys;
    DeliveryCallback then_select;  // empty: waiters are woken instead
    std::vector<Key> select_keys;  // with then_select: every key of the select, in its order
  };
  void WorkerLoop();
  void QueuePromotionLocked(NamespaceId ns, std::vector<Key> keys, DeliveryCallback then_select,
                            std::vector<Key> select_keys = {});
  // Promotes one spilled entry; returns false when it could not, and then sets
  // *io_error (if given and still OK) when the disk failed the read.
  bool Promote(const NsKey& key, Status* io_error = nullptr);
  // Promotion when both tiers are full; see tier_mover.cc. A failed spill read
  // leaves everything in place and is returned in *read_error.
  std::optional<Slot> SwapIn(Entry* e, const NsKey& key, uint64_t size, Status* read_error);
  // Puts a promoted value's slot into its entry and wakes its waiters.
  bool InstallPromoted(Entry* e, const NsKey& key, const Slot& slot);
  // Demotes LRU entries of `t` into the tier below until `bytes_free` bytes of
  // `t` are free (or nothing more can go). Returns bytes freed.
  uint64_t DemoteUntilFree(StoreTier& t, uint64_t bytes_free);
  // Demotes `t`'s least recently used movable entry (waited-for entries only
  // with allow_waited) into the tier below; false when none could go.
  bool DemoteOne(StoreTier& t, bool allow_waited);
  // REQUIRES `lock` holds mu_: that entry, or null. Looks at the LRU in
  // slices of kVictimSliceEntries, releasing the mutex between them.
  Entry* PickVictim(const StoreTier& t, const StoreTier& below, bool allow_waited,
                    std::unique_lock<std::mutex>& lock);
  // A host slot for `size` bytes, demoting LRU entries to spill until the
  // allocation succeeds (free bytes alone are not a slot of the right class);
  // nullopt when nothing more can be demoted.
  std::optional<Slot> AllocateHostDemoting(uint64_t size);
  // REQUIRES: `e` is a host entry pinned and marked moving by the caller (both
  // are undone here). Writes it to spill and frees its host slot.
  bool MoveHostToSpill(Entry* e);

  // Device tier (device_tier.cc).
  // Copies a committed value into a free device slot; nullopt (the value stays
  // in host) when the tier is absent or full, the key is waited for, or the copy fails.
  std::optional<DeviceSlot> CopyUpAtCommit(const NsKey& key, std::span<const std::byte> bytes);
  // REQUIRES: `e` is pinned and marked moving by the caller (both are undone
  // here). Copies its value into a host slot and moves it to the host tier.
  bool MoveDeviceToHost(Entry* e, bool for_delivery);
  // Shutdown flush of device-resident entries (worker stopped). Returns failures.
  size_t FlushDeviceToSpill(size_t* written, uint64_t* bytes);
  // REQUIRES mu_ held: moves an entry's accounting and LRU membership.
  void LinkLocked(Entry* e);
  void UnlinkLocked(Entry* e);
  // REQUIRES mu_ held. Tries to satisfy waiters of `key`; queues their callbacks.
  void WakeWaitersLocked(const NsKey& key, Callbacks* out);
  // REQUIRES mu_ held. Claims every key for a drop_select if all are present.
  std::unique_ptr<Delivery> TryClaimLocked(NamespaceId ns, std::span<const Key> keys);
  // REQUIRES mu_ held, `e` indexed. Removes it from the index; frees now or when unpinned.
  void EraseLocked(Entry* e);
  // REQUIRES mu_ held, `e` out of the index: frees it now, or dooms it to be
  // freed when its last pin goes.
  void FreeOrDoomLocked(Entry* e);
  // REQUIRES mu_ held: drops one pin; frees a doomed entry whose last pin it was.
  void UnpinLocked(Entry* e);
  // REQUIRES mu_ held: UnpinLocked of a pin taken for a move, which ends.
  void UnpinAfterMoveLocked(Entry* e);
  void FreeEntryLocked(Entry* e);
  // Stops the tier worker and waits for it.
  void StopWorker();
  // REQUIRES mu_ held, no entry of e's key indexed: copies `e` into the pool
  // and indexes it; null (nothing changed) when the pool is full.
  Entry* InsertIndexLocked(const Entry& e);
  // REQUIRES mu_ held, `e` pooled and out of the index, no entry of its key indexed.
  void IndexLocked(Entry* e);
  // REQUIRES mu_ held: the slot behind an entry in host (device) memory, as
  // the memory handed it out.
  Slot HostSlotLocked(const Entry* e) const;
  DeviceSlot DeviceSlotLocked(const Entry* e) const;
  // Why an insert is refused for a full entry pool or string table.
  Status EntryRefusal(const Key& key, const char* what) const;
  static void RunCallbacks(Callbacks& cbs);
  // REQUIRES mu_ held: the entry's metadata as callers see it.
  EntryMeta MetaLocked(const Entry* e) const;
  // The expiry bucket a deadline falls in (TtlBuckets), and an Entry::expiry
  // for it (bucket + 1, clamped to 32 bits; see entry.h).
  uint64_t TtlBucket(std::chrono::steady_clock::time_point t) const;
  uint32_t ExpiryFor(std::chrono::steady_clock::time_point deadline) const;
  // The deadline EntryMeta reports for an Entry::expiry: the end of its bucket.
  uint64_t ExpiresUnixMs(uint32_t expiry) const;

  // Per-namespace accounting and quotas (GUARDED_BY(mu_)).
  struct NamespaceState {
    NamespaceQuota quota;
    uint64_t entries = 0;
    uint64_t tier_entries[3] = {};  // by Tier
    uint64_t tier_bytes[3] = {};    // by Tier
    uint64_t host_slot_bytes = 0;
    uint64_t reserved_entries = 0, reserved_bytes = 0;
    uint64_t inserts = 0, refused_inserts = 0, hits = 0, misses = 0, ttl_expired = 0;
  };
  NamespaceState& NsLocked(NamespaceId ns) { return namespaces_[ns]; }
  // Refusal of a Reserve by a quota of `ns`, or OK.
  Status CheckQuotaLocked(NamespaceId ns, uint64_t bytes);
  // Whether `ns` may put `bytes` more into the device or spill tier.
  bool TierQuotaAllowsLocked(NamespaceId ns, Tier tier, uint64_t bytes);
  void ReleaseReservationLocked(NamespaceId ns, uint64_t bytes);
  NamespaceUsage UsageLocked(NamespaceId ns, const NamespaceState& st) const;

  const StoreOptions options_;
  const std::chrono::steady_clock::time_point started_;
  const uint64_t started_unix_ms_;  // the wall clock at started_
  StoreCounters counters_;

  mutable std::mutex mu_;
  // The memory behind the tiers. Allocate/Free GUARDED_BY(mu_).
  std::unique_ptr<HostMemory> memory_;
  std::unique_ptr<tiers::SpillStore> spill_;  // null = no spill tier
  std::unique_ptr<DeviceMemory> device_;      // null = no device tier
  std::unique_ptr<TierMemory> spill_memory_;  // the spill tier's disk as a TierMemory
  // GUARDED_BY(mu_): every entry (indexed, claimed, doomed). Before what links entries.
  std::unique_ptr<EntryPool> pool_;
  std::unique_ptr<EntryCounts> counts_;  // GUARDED_BY(mu_): the pool's pins and extra takers
  // GUARDED_BY(mu_): the tiers that exist, top-down (device, host, spill), and
  // each by its Tier (null when absent).
  std::vector<std::unique_ptr<StoreTier>> tiers_;
  StoreTier* by_kind_[3] = {};
  std::unique_ptr<EntryIndex> index_;     // GUARDED_BY(mu_)
  std::unique_ptr<StringTable> strings_;  // GUARDED_BY(mu_): layout and producer strings of entries
  std::unordered_map<NamespaceId, NamespaceState> namespaces_;  // GUARDED_BY(mu_)
  // GUARDED_BY(mu_): the expiry buckets (ttl_buckets.h).
  std::unique_ptr<TtlBuckets> ttl_;
  std::unique_ptr<tiers::DurableWriter> durable_;  // --durability sync with spill; else null
  // Durable mode: keys whose write-through is done or under way but whose entry
  // is not in the index yet, with how many such writes (GUARDED_BY(mu_)).
  std::unordered_map<NsKey, uint32_t, NsKeyHash> durable_in_flight_;
  std::deque<PromoteTask> promotions_;  // GUARDED_BY(mu_)
  std::condition_variable worker_cv_;
  bool stop_worker_ = false;  // GUARDED_BY(mu_)
  std::thread worker_;
  WaiterTable waiters_;        // GUARDED_BY(mu_)
  uint64_t held_entries_ = 0;  // GUARDED_BY(mu_): claimed or doomed
  std::function<void()> slice_hook_for_tests_;
  std::function<void()> commit_hook_for_tests_;
};

}  // namespace kvstore::server
