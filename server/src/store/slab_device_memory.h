// The allocation half of a DeviceMemory: device-tier slots carved by the
// size-class allocator out of one range [0, bytes). Implementations add the
// copies. Private to server_core.
//
// Thread-compatibility: as DeviceMemory (the Store serializes Allocate/Free).
#pragma once

#include <optional>

#include "kvstore/server/device_memory.h"
#include "kvstore/tiers/slab_allocator.h"

namespace kvstore::server {

class SlabDeviceMemory : public DeviceMemory {
 public:
  explicit SlabDeviceMemory(uint64_t bytes)
      : allocator_(tiers::SlabAllocatorOptions{.base_offset = 0, .total_bytes = bytes}) {}

  std::optional<DeviceSlot> Allocate(uint64_t size) override {
    auto a = allocator_.Allocate(size);
    if (!a) return std::nullopt;
    return DeviceSlot{a->offset, size, a->capacity, a->size_class, a->requested};
  }
  void Free(const DeviceSlot& slot) override {
    allocator_.Free(tiers::Allocation{slot.offset, slot.capacity, slot.size_class, slot.requested});
  }
  DeviceSlot SlotAt(uint64_t offset, uint32_t size_class, uint64_t requested) const override {
    return DeviceSlot{offset, requested, allocator_.CapacityOf(size_class, requested), size_class,
                      requested};
  }
  uint64_t capacity() const override { return allocator_.capacity_bytes(); }
  uint64_t used() const override { return allocator_.Stats().allocated_bytes; }

 protected:
  // InvalidArgument when `len` bytes do not fit `slot`.
  static Status CheckFits(const char* what, const DeviceSlot& slot, size_t len) {
    if (len <= slot.capacity) return Status::Ok();
    return Status::InvalidArgument(std::string("device tier ") + what + ": " + std::to_string(len) +
                                   " bytes do not fit a slot of " + std::to_string(slot.capacity) +
                                   " at offset " + std::to_string(slot.offset) +
                                   " (a bug in the Store)");
  }

 private:
  tiers::SlabAllocator allocator_;
};

}  // namespace kvstore::server
