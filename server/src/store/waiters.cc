#include "kvstore/server/waiters.h"

#include <algorithm>

namespace kvstore::server {

uint64_t WaiterTable::Add(NamespaceId ns, std::vector<Key> keys, DeliveryCallback callback) {
  uint64_t id = next_id_++;
  for (const Key& k : keys) {
    auto& q = by_key_[NsKey{ns, k}];
    if (q.empty() || q.back() != id) q.push_back(id);  // a key listed twice waits once
  }
  waiters_.emplace(id, Waiter{id, ns, std::move(keys), std::move(callback)});
  ++per_ns_[ns];
  return id;
}

std::optional<Waiter> WaiterTable::Remove(uint64_t id) {
  auto it = waiters_.find(id);
  if (it == waiters_.end()) return std::nullopt;
  Waiter w = std::move(it->second);
  waiters_.erase(it);
  if (auto n = per_ns_.find(w.ns); n != per_ns_.end() && --n->second == 0) per_ns_.erase(n);
  for (const Key& k : w.keys) {
    auto q = by_key_.find(NsKey{w.ns, k});
    if (q == by_key_.end()) continue;
    auto& ids = q->second;
    ids.erase(std::remove(ids.begin(), ids.end(), id), ids.end());
    if (ids.empty()) by_key_.erase(q);
  }
  return w;
}

std::vector<uint64_t> WaiterTable::WaitingOn(const NsKey& key) const {
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return {};
  return {it->second.begin(), it->second.end()};
}

const Waiter* WaiterTable::Find(uint64_t id) const {
  auto it = waiters_.find(id);
  return it == waiters_.end() ? nullptr : &it->second;
}

std::vector<Waiter> WaiterTable::TakeAll() {
  std::vector<Waiter> all;
  all.reserve(waiters_.size());
  for (auto& [id, w] : waiters_) all.push_back(std::move(w));
  waiters_.clear();
  by_key_.clear();
  per_ns_.clear();
  return all;
}

}  // namespace kvstore::server
