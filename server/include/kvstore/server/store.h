// The store: index of committed entries, their memory, waiters and TTLs.
//
// Entry life: Reserve (slot allocated, invisible) -> bytes arrive -> Commit
// (checksum verified, visible atomically, waiters woken) -> Select pins it
// while bytes go out / DropSelect claims it (invisible to everyone else) ->
// Delivery::Finish frees it (delivered) or puts it back (delivery failed).
// TTL expiry and Remove drop committed entries; a pinned entry is freed when
// its last reader finishes.
//
// Thread-safety: all public methods are thread-safe (one mutex). Callbacks
// are never run under the mutex.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "kvstore/client.h"
#include "kvstore/key.h"
#include "kvstore/server/host_memory.h"
#include "kvstore/server/server_options.h"
#include "kvstore/server/waiters.h"
#include "kvstore/status.h"

namespace kvstore::server {

class Store;
struct Entry;

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
  EntryMeta meta;
  Slot slot;
  std::chrono::milliseconds ttl{0};
  bool exists = false;  // the key was already stored: nothing reserved, drain the bytes
  std::span<std::byte> bytes() const { return {slot.data, slot.size}; }
};

struct StoreCounters {
  std::atomic<uint64_t> inserts{0};
  std::atomic<uint64_t> hits{0};
  std::atomic<uint64_t> misses{0};
  std::atomic<uint64_t> ttl_expired{0};
  std::atomic<uint64_t> evictions{0};
  std::atomic<uint64_t> promotions{0};
  std::atomic<uint64_t> refused_inserts{0};
  std::atomic<uint64_t> checksum_failures{0};
  std::atomic<uint64_t> redeliveries{0};  // drop_select deliveries that failed and were put back
};

class Store {
 public:
  Store(const StoreOptions& options, std::unique_ptr<HostMemory> memory);
  ~Store();

  // Reserves memory for `meta.size` bytes under `key`. ResourceExhausted when
  // the tier is full; InvalidArgument for a value over the size limit.
  Result<Reservation> Reserve(const Key& key, const EntryMeta& meta, std::chrono::milliseconds ttl);
  // Verifies the checksum of the reserved bytes and makes the entry visible.
  // Returns true when stored, false when another insert of the same key won.
  // DataLoss (and the reservation freed) when the checksum does not match.
  Result<bool> Commit(Reservation&& r);
  void Abort(Reservation&& r);

  // Resolves at once: the callback gets a Delivery of pinned entries, or
  // NotFound naming the first missing key.
  void Select(std::span<const Key> keys, const DeliveryCallback& callback);
  // Resolves when every key is committed and unclaimed; until then the call
  // waits. Returns the waiter id to cancel it with, or 0 when already resolved.
  uint64_t DropSelect(std::span<const Key> keys, DeliveryCallback callback);
  // True when the waiter was still pending and is now gone (its callback will
  // not run); false when it already resolved.
  bool CancelWaiter(uint64_t id);

  size_t MatchPrefix(std::span<const Key> keys);
  // Adds a pending taker to each leading stored key; returns how many.
  size_t Retain(std::span<const Key> keys);
  size_t Remove(std::span<const Key> keys);
  // Entries in key order after `cursor` (exclusive), at most `limit`; `prefix` filters.
  ListPage List(std::span<const std::byte> cursor, uint32_t limit, int tier,
                std::span<const std::byte> prefix);
  StoreStats Stats();
  const StoreCounters& counters() const { return counters_; }

  // Drops committed, unpinned entries whose TTL passed. Returns how many.
  size_t ExpireTtl();
  // Fails every pending waiter with Unavailable.
  void FailAllWaiters(const std::string& why);
  std::string DescribeMemory() const;

 private:
  friend class Delivery;
  using Callbacks = std::vector<std::pair<DeliveryCallback, std::unique_ptr<Delivery>>>;

  void FinishDelivery(Delivery* d, bool delivered);
  // REQUIRES mu_ held. Tries to satisfy waiters of `key`; queues their callbacks.
  void WakeWaitersLocked(const Key& key, Callbacks* out);
  // REQUIRES mu_ held. Claims every key for a drop_select if all are present.
  std::unique_ptr<Delivery> TryClaimLocked(std::span<const Key> keys);
  // REQUIRES mu_ held. Removes from the index; frees now or when unpinned.
  void EraseLocked(std::unordered_map<Key, std::unique_ptr<Entry>, KeyHash>::iterator it);
  void FreeEntryLocked(Entry* e);
  void InsertIndexLocked(std::unique_ptr<Entry> e);
  static void RunCallbacks(Callbacks& cbs);

  const StoreOptions options_;
  const std::chrono::steady_clock::time_point started_;
  StoreCounters counters_;

  mutable std::mutex mu_;
  std::unique_ptr<HostMemory> memory_;                              // GUARDED_BY(mu_)
  std::unordered_map<Key, std::unique_ptr<Entry>, KeyHash> index_;  // GUARDED_BY(mu_)
  std::list<Entry*> lru_;                                           // GUARDED_BY(mu_): front = newest
  WaiterTable waiters_;                                             // GUARDED_BY(mu_)
  uint64_t host_value_bytes_ = 0;                                   // GUARDED_BY(mu_)
  uint64_t held_entries_ = 0;                                       // GUARDED_BY(mu_): claimed or doomed
};

}  // namespace kvstore::server
