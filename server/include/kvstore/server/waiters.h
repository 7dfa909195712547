// Pending drop_select calls, indexed by the keys they wait for.
//
// Thread-compatibility: not synchronized; the Store owns one and calls it under
// its mutex.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "kvstore/key.h"
#include "kvstore/server/ns_key.h"
#include "kvstore/status.h"

namespace kvstore::server {

class Delivery;
// Receives the entries of a select or drop_select, or the reason there are none.
// Called without the Store's lock held, on whatever thread resolved the call.
using DeliveryCallback = std::function<void(Result<std::unique_ptr<Delivery>>)>;

struct Waiter {
  uint64_t id = 0;
  NamespaceId ns = kDefaultNamespace;  // every key is in this namespace
  std::vector<Key> keys;
  DeliveryCallback callback;
};

class WaiterTable {
 public:
  // Returns the new waiter's id (never 0).
  uint64_t Add(NamespaceId ns, std::vector<Key> keys, DeliveryCallback callback);
  // Removes and returns the waiter; nullopt when it is no longer pending.
  std::optional<Waiter> Remove(uint64_t id);
  // Ids of waiters that include `key`, oldest first; empty when none.
  std::vector<uint64_t> WaitingOn(const NsKey& key) const;
  const Waiter* Find(uint64_t id) const;
  // True when some pending waiter includes `key`.
  bool HasWaiter(const NsKey& key) const { return by_key_.contains(key); }
  size_t size() const { return waiters_.size(); }
  // Pending waiters of one namespace.
  size_t CountIn(NamespaceId ns) const {
    auto it = per_ns_.find(ns);
    return it == per_ns_.end() ? 0 : it->second;
  }
  // Removes every waiter (shutdown).
  std::vector<Waiter> TakeAll();

 private:
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, Waiter> waiters_;
  std::unordered_map<NsKey, std::deque<uint64_t>, NsKeyHash> by_key_;
  std::unordered_map<NamespaceId, size_t> per_ns_;
};

}  // namespace kvstore::server
