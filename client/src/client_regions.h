// Registered regions of one Client: caller memory named once, then used by
// (region, offset, length) in transfers. Private to the client library.
//
// Thread-safety: thread-safe.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "kvstore/client.h"
#include "kvstore/transport/transport.h"

namespace kvstore {
namespace internal {

// Region table and transfer counters of one Client. Thread-safe.
class RegionTable {
 public:
  Result<RegionId> Add(std::span<std::byte> memory, bool device = false) {
    if (memory.empty()) return Status::InvalidArgument("cannot register an empty region");
    std::lock_guard lock(mu_);
    RegionId id{++next_};
    regions_[id.value] = Record{memory, {}, transport::Kind::kTcp, device, nullptr};
    return id;
  }
  // Shared memory (local transport): registered, and kept mapped until removed.
  RegionId AddShared(std::shared_ptr<transport::SharedMemory> shared) {
    std::lock_guard lock(mu_);
    RegionId id{++next_};
    regions_[id.value] = Record{shared->bytes(), {}, transport::Kind::kTcp, false, shared};
    return id;
  }
  // The shared memory behind a region, or null.
  std::shared_ptr<transport::SharedMemory> SharedOf(RegionId id) const {
    std::lock_guard lock(mu_);
    auto it = regions_.find(id.value);
    return it == regions_.end() ? nullptr : it->second.shared;
  }
  // The shared region `s` lies in, as a slice; empty when it lies in none.
  std::optional<RegionSlice> FindShared(std::span<const std::byte> s) const {
    return Find(s, /*shared_only=*/true);
  }
  // The region `s` lies in: shared memory, or with !shared_only any region of
  // host memory (never GPU memory: the caller hashes the bytes). Empty: none.
  std::optional<RegionSlice> Find(std::span<const std::byte> s, bool shared_only) const {
    std::lock_guard lock(mu_);
    for (const auto& [id, r] : regions_) {
      const bool inside = r.shared
                              ? r.shared->Contains(s)
                              : !shared_only && !r.device && !s.empty() &&
                                    s.data() >= r.memory.data() && s.size() <= r.memory.size() &&
                                    s.data() - r.memory.data() <=
                                        static_cast<ptrdiff_t>(r.memory.size() - s.size());
      if (inside) {
        return RegionSlice{RegionId{id}, static_cast<uint64_t>(s.data() - r.memory.data()),
                           s.size()};
      }
    }
    return std::nullopt;
  }
  // True for GPU memory (RegisterDeviceRegion): never touched on the CPU.
  bool IsDevice(RegionId id) const {
    std::lock_guard lock(mu_);
    auto it = regions_.find(id.value);
    return it != regions_.end() && it->second.device;
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
    const auto& m = it->second.memory;
    if (s.offset > m.size() || s.length > m.size() - s.offset) {
      return Status::InvalidArgument("slice [" + std::to_string(s.offset) + ", +" +
                                     std::to_string(s.length) + ") is outside region " +
                                     std::to_string(s.region.value) + " of " +
                                     std::to_string(m.size()) + " bytes");
    }
    return m.subspan(s.offset, s.length);
  }

  bool Contains(uint32_t id) const {
    std::lock_guard lock(mu_);
    return regions_.contains(id);
  }

  // The descriptor of a region for a one-sided transport, exported at first
  // use and kept (one registration per region, not per transfer).
  Result<std::vector<std::byte>> Descriptor(RegionId id, transport::RegionExporter& exporter) {
    std::lock_guard lock(mu_);
    auto it = regions_.find(id.value);
    if (it == regions_.end()) {
      return Status::InvalidArgument("region " + std::to_string(id.value) +
                                     " is not registered (or was unregistered)");
    }
    Record& r = it->second;
    if (!r.exported || r.exported_kind != exporter.kind()) {
      KVSTORE_ASSIGN_OR_RETURN(transport::ExportedRegion e, exporter.Export(r.memory));
      r.exported = std::move(e);
      r.exported_kind = exporter.kind();
    }
    return r.exported->descriptor;
  }

  std::atomic<uint64_t> registered{0};
  std::atomic<uint64_t> unregistered{0};
  std::atomic<uint64_t> one_sided{0};
  std::atomic<uint64_t> on_the_fly{0};

 private:
  struct Record {
    std::span<std::byte> memory;
    std::optional<transport::ExportedRegion> exported;
    transport::Kind exported_kind;
    bool device = false;
    std::shared_ptr<transport::SharedMemory> shared;  // AllocateSharedRegion's memory
  };
  mutable std::mutex mu_;
  uint32_t next_ = 0;                             // GUARDED_BY(mu_)
  std::unordered_map<uint32_t, Record> regions_;  // GUARDED_BY(mu_)
};

}  // namespace internal
}  // namespace kvstore
