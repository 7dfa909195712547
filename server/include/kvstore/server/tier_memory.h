// What every tier of the Store has in common about the memory behind it: how
// much there is and how much is taken. The host tier's HostMemory, the device
// tier's DeviceMemory and the spill tier's disk each implement it, so the
// Store's tiers (store_tier.h) compute their watermarks and stats rows alike.
// Allocation stays with each kind of memory: host slots are addressable, device
// slots and spilled values are not.
//
// Thread-compatibility: not internally synchronized; the Store calls it under its mutex.
#pragma once

#include <cstdint>
#include <string>

namespace kvstore::server {

class TierMemory {
 public:
  virtual ~TierMemory() = default;
  virtual uint64_t capacity() const = 0;
  virtual uint64_t used() const = 0;  // capacities of live slots (bytes on disk for spill)
  // One line for the start-up log: what memory backs the tier.
  virtual std::string Describe() const = 0;
};

}  // namespace kvstore::server
