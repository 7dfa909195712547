// Where device-tier values live: slots of GPU memory handed out by an allocator,
// filled and read back by explicit copies (the host never dereferences them).
//
// The Store only sees this interface, so its tier logic is unit-tested without a
// GPU against MakeHostBackedDeviceMemoryForTests; the daemon uses
// MakeCudaDeviceMemory (a DeviceArena and a tiers::SlabAllocator).
//
// Thread-safety: Allocate, Free, capacity, used and Describe are not internally
// synchronized; the Store calls them under its mutex. CopyFromHost and
// CopyToHost are thread-safe (with each other and with Allocate/Free of other
// slots) and may block for a whole PCIe transfer: the Store calls them without
// its mutex, with the slot pinned.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "kvstore/server/tier_memory.h"
#include "kvstore/status.h"

namespace kvstore::device {
class DeviceArena;
}  // namespace kvstore::device

namespace kvstore::server {

// The bytes of one value in device memory: a range, not a host pointer.
struct DeviceSlot {
  uint64_t offset = 0;    // within the device memory
  uint64_t size = 0;      // value bytes
  uint64_t capacity = 0;  // bytes taken (size rounded up to its class); 0 = no slot
  uint32_t size_class = 0;
  uint64_t requested = 0;  // what the allocator was asked for (handed back on Free)
};

class DeviceMemory : public TierMemory {
 public:
  // nullopt when no slot of `size` bytes is free. The returned slot has size == `size`.
  virtual std::optional<DeviceSlot> Allocate(uint64_t size) = 0;
  // REQUIRES: `slot` came from Allocate and was not freed since; no copy on it runs.
  virtual void Free(const DeviceSlot& slot) = 0;
  // The DeviceSlot that Allocate(requested) handed out at `offset` with
  // `size_class` (size = requested), rebuilt for an owner that keeps only
  // those three. REQUIRES: that slot is live.
  virtual DeviceSlot SlotAt(uint64_t offset, uint32_t size_class, uint64_t requested) const = 0;
  // capacity(), used() and Describe() come from TierMemory.

  // Copy a whole value in or out; returns when the bytes have arrived. An empty
  // span is a no-op. InvalidArgument when the span is larger than the slot;
  // Internal (naming the device call) when the device fails the copy.
  // REQUIRES: `slot` is live and not freed until the call returns.
  virtual Status CopyFromHost(const DeviceSlot& slot, std::span<const std::byte> src) = 0;
  virtual Status CopyToHost(const DeviceSlot& slot, std::span<std::byte> dst) = 0;
  // The GPU arena behind the slots, for registering with an RDMA NIC; null
  // when there is none (the test double).
  virtual const device::DeviceArena* arena() const { return nullptr; }
};

// The device tier on GPU `device_index`: one cudaMalloc'd arena of `capacity`
// bytes (rounded up to 2 MiB) carved by the size-class allocator; copies run on
// the arena's stream, one at a time. Unavailable when there is no GPU or the
// build has no CUDA (the message says which); ResourceExhausted when the GPU
// has not that much free memory.
Result<std::unique_ptr<DeviceMemory>> MakeCudaDeviceMemory(uint64_t capacity, int device_index = 0);

// TEST DOUBLE, for unit tests of the Store only: "device" memory that is a plain
// host heap buffer with the same size-class allocator, copies are memcpy. It
// lets tests check the Store's tier logic on machines without a GPU; it tests
// nothing about CUDA. Never used by the daemon.
std::unique_ptr<DeviceMemory> MakeHostBackedDeviceMemoryForTests(uint64_t capacity);

}  // namespace kvstore::server
