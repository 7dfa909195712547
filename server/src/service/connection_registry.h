// The live connections of a server, for shutdown and for limits.
//
// Connections that have not authenticated yet have a budget of their own
// (`max_unauthenticated` in all, `max_unauthenticated_per_peer` per peer): a
// new one beyond it takes the place of the oldest unauthenticated connection
// (of that peer, or of all), which is closed. A client that sends its hello at
// once is authenticated long before it could be pushed out; peers that connect
// and say nothing only ever push out each other, and never count against
// --max-connections, which bounds authenticated connections.
//
// Thread-safety: thread-safe.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace kvstore::server {

class Connection;

class ConnectionRegistry {
 public:
  ConnectionRegistry(size_t max_unauthenticated = 128, size_t max_unauthenticated_per_peer = 32)
      : max_unauth_(max_unauthenticated), max_unauth_per_peer_(max_unauthenticated_per_peer) {}

  void SetLimits(size_t max_unauthenticated, size_t max_unauthenticated_per_peer) {
    std::lock_guard lock(mu_);
    max_unauth_ = max_unauthenticated;
    max_unauth_per_peer_ = max_unauthenticated_per_peer;
  }

  // An authenticated connection (the daemon requires no token).
  void Add(uint64_t id, const std::shared_ptr<Connection>& c) {
    std::lock_guard lock(mu_);
    live_[id] = c;
  }
  // A connection that still has to authenticate, from `peer`. Returns the
  // connections whose place it takes: the caller closes them.
  std::vector<std::shared_ptr<Connection>> AddUnauthenticated(uint64_t id,
                                                              const std::shared_ptr<Connection>& c,
                                                              const std::string& peer) {
    std::vector<std::shared_ptr<Connection>> evict;
    std::lock_guard lock(mu_);
    live_[id] = c;
    size_t from_peer = 0;
    for (const Pending& p : pending_) from_peer += p.peer == peer;
    auto take = [&](auto it) {
      if (auto old = it->conn.lock()) evict.push_back(std::move(old));
      return pending_.erase(it);
    };
    if (max_unauth_per_peer_ > 0 && from_peer >= max_unauth_per_peer_) {
      for (auto it = pending_.begin(); it != pending_.end(); ++it) {
        if (it->peer == peer) {
          take(it);
          break;
        }
      }
    }
    while (max_unauth_ > 0 && pending_.size() >= max_unauth_) take(pending_.begin());
    pending_.push_back({id, c, peer});
    return evict;
  }
  void MarkAuthenticated(uint64_t id) {
    std::lock_guard lock(mu_);
    ErasePending(id);
  }
  void Remove(uint64_t id) {
    std::lock_guard lock(mu_);
    live_.erase(id);
    ErasePending(id);
  }
  size_t size() const {
    std::lock_guard lock(mu_);
    return live_.size();
  }
  size_t authenticated() const {
    std::lock_guard lock(mu_);
    return live_.size() - pending_.size();
  }
  size_t unauthenticated() const {
    std::lock_guard lock(mu_);
    return pending_.size();
  }
  std::vector<std::shared_ptr<Connection>> Snapshot() const {
    std::lock_guard lock(mu_);
    std::vector<std::shared_ptr<Connection>> out;
    for (auto& [id, w] : live_) {
      if (auto c = w.lock()) out.push_back(std::move(c));
    }
    return out;
  }

 private:
  struct Pending {
    uint64_t id;
    std::weak_ptr<Connection> conn;
    std::string peer;
  };
  void ErasePending(uint64_t id) {
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if (it->id == id) {
        pending_.erase(it);
        return;
      }
    }
  }

  mutable std::mutex mu_;
  size_t max_unauth_;                                             // GUARDED_BY(mu_)
  size_t max_unauth_per_peer_;                                    // GUARDED_BY(mu_)
  std::unordered_map<uint64_t, std::weak_ptr<Connection>> live_;  // GUARDED_BY(mu_)
  std::list<Pending> pending_;  // GUARDED_BY(mu_): unauthenticated, oldest first
};

}  // namespace kvstore::server
