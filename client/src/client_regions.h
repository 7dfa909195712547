// Registered regions of one Client: caller memory named once, then used by
// (region, offset, length) in transfers. Private to the client library.
//
// Thread-safety: thread-safe.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "kvstore/client.h"

namespace kvstore {
namespace internal {

// Region table and transfer counters of one Client. Thread-safe.
class RegionTable {
 public:
  Result<RegionId> Add(std::span<std::byte> memory) {
    if (memory.empty()) return Status::InvalidArgument("cannot register an empty region");
    std::lock_guard lock(mu_);
    RegionId id{++next_};
    regions_[id.value] = memory;
    return id;
  }
  Status Remove(RegionId id) {
    std::lock_guard lock(mu_);
    if (regions_.erase(id.value) == 0) {
      return Status::NotFound("region " + std::to_string(id.value) + " is not registered");
    }
    return Status::Ok();
  }
  Result<std::span<std::byte>> Resolve(const RegionSlice& s) const {
    std::lock_guard lock(mu_);
    auto it = regions_.find(s.region.value);
    if (it == regions_.end()) {
      return Status::InvalidArgument("region " + std::to_string(s.region.value) +
                                     " is not registered (or was unregistered)");
    }
    const auto& m = it->second;
    if (s.offset > m.size() || s.length > m.size() - s.offset) {
      return Status::InvalidArgument("slice [" + std::to_string(s.offset) + ", +" +
                                     std::to_string(s.length) + ") is outside region " +
                                     std::to_string(s.region.value) + " of " +
                                     std::to_string(m.size()) + " bytes");
    }
    return m.subspan(s.offset, s.length);
  }

  std::atomic<uint64_t> registered{0};
  std::atomic<uint64_t> unregistered{0};

 private:
  mutable std::mutex mu_;
  uint32_t next_ = 0;                                           // GUARDED_BY(mu_)
  std::unordered_map<uint32_t, std::span<std::byte>> regions_;  // GUARDED_BY(mu_)
};

}  // namespace internal
}  // namespace kvstore
