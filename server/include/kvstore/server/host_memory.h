// Where host-tier values live: slots handed out by an allocator over one arena.
//
// Thread-compatibility: not internally synchronized; the Store calls it under its mutex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "kvstore/server/tier_memory.h"
#include "kvstore/status.h"

namespace kvstore::server {

// The bytes of one value in host memory.
struct Slot {
  std::byte* data = nullptr;
  uint64_t size = 0;      // value bytes
  uint64_t capacity = 0;  // bytes taken from the arena (size rounded up to its class)
  uint64_t offset = 0;    // within the arena
  uint32_t size_class = 0;
  uint64_t requested = 0;  // what the allocator was asked for (handed back on Free)
};

class HostMemory : public TierMemory {
 public:
  // nullopt when no slot of `size` bytes is free.
  virtual std::optional<Slot> Allocate(uint64_t size) = 0;
  // REQUIRES: `slot` came from Allocate and was not freed since.
  virtual void Free(const Slot& slot) = 0;
  // The Slot that Allocate(requested) handed out at `data` with `size_class`
  // (size = requested), rebuilt for an owner that keeps only those three (the
  // Store's compact entries). REQUIRES: that slot is live.
  virtual Slot SlotAt(std::byte* data, uint32_t size_class, uint64_t requested) const = 0;
  // capacity(), used() and Describe() (TierMemory): Describe also says whether it is pinned.
  // The one contiguous range every slot lies in (what a NIC registers once);
  // empty when slots are scattered (heap memory in tests).
  virtual std::span<std::byte> arena() const { return {}; }
};

// The host tier over one mmap'd, pre-faulted, (when allowed) mlock'ed arena with
// a size-class allocator: the region a transport registers once. Errors when the
// arena cannot be mapped.
Result<std::unique_ptr<HostMemory>> MakeArenaMemory(uint64_t capacity, bool lock_memory);
// Plain heap slots with byte accounting (unit tests of the Store).
std::unique_ptr<HostMemory> MakeHeapMemory(uint64_t capacity);

}  // namespace kvstore::server
