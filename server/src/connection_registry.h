// The live connections of a server, for shutdown and for limits.
//
// Thread-safety: thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace kvstore::server {

class Connection;

class ConnectionRegistry {
 public:
  void Add(uint64_t id, const std::shared_ptr<Connection>& c) {
    std::lock_guard lock(mu_);
    live_[id] = c;
  }
  void Remove(uint64_t id) {
    std::lock_guard lock(mu_);
    live_.erase(id);
  }
  size_t size() const {
    std::lock_guard lock(mu_);
    return live_.size();
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
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, std::weak_ptr<Connection>> live_;
};

}  // namespace kvstore::server
