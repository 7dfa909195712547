// One stored entry, as the Store keeps it. Private to the Store's sources.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <span>

#include "kvstore/client.h"
#include "kvstore/key.h"
#include "kvstore/server/device_memory.h"
#include "kvstore/server/host_memory.h"
#include "kvstore/server/ns_key.h"

namespace kvstore::server {

struct Entry {
  Key key;
  NamespaceId ns = kDefaultNamespace;
  EntryMeta meta;  // meta.tier says where the bytes are now
  Slot slot;       // host tier: the bytes; device and spill tier: empty
  DeviceSlot dev;  // device tier: where the bytes are; otherwise empty (capacity 0)
  std::chrono::steady_clock::time_point expires = std::chrono::steady_clock::time_point::max();
  uint32_t pins = 0;      // readers of the bytes (select deliveries, tier moves)
  uint32_t takers = 1;    // drop_selects that must each get the bytes; the last removes it
  bool indexed = false;   // in the index (visible); false when claimed or doomed
  bool doomed = false;    // dropped while pinned: freed when the last pin goes
  bool in_spill = false;  // a copy is on the spill tier
  bool moving = false;    // a promotion or a device->host move is under way
  // Valid while indexed in the host tier (Store::lru_) or the device tier (Store::device_lru_).
  std::list<Entry*>::iterator lru;
  NsKey id() const { return {ns, key}; }
  std::span<const std::byte> bytes() const { return {slot.data, slot.size}; }
  bool in_host() const { return slot.data != nullptr; }
  bool in_device() const { return dev.capacity != 0; }  // never both in_host and in_device
};

}  // namespace kvstore::server
