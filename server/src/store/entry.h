// One stored entry, as the Store keeps it. Private to the Store's sources.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "kvstore/key.h"
#include "kvstore/server/device_memory.h"
#include "kvstore/server/host_memory.h"
#include "kvstore/server/ns_key.h"
#include "kvstore/types.h"

namespace kvstore::server {

// EntryMeta as the index keeps it: layout and producer are ids of a
// StringTable (most entries share a handful of them), not two strings each.
struct StoredMeta {
  uint64_t size = 0;
  uint64_t checksum = 0;
  uint64_t created_unix_ms = 0;
  uint64_t expires_unix_ms = 0;  // 0 = never
  uint32_t layout = 0;           // StringTable ids; 0 = ""
  uint32_t producer = 0;
  Tier tier = Tier::kHost;
};

// Interned strings with reference counts. Not synchronized (the Store's mutex).
class StringTable {
 public:
  uint32_t Intern(const std::string& s) {
    if (s.empty()) return 0;
    auto [it, added] = ids_.try_emplace(s, 0);
    if (added) {
      uint32_t id;
      if (!free_.empty()) {
        id = free_.back();
        free_.pop_back();
      } else {
        id = static_cast<uint32_t>(strings_.size());
        strings_.emplace_back();
      }
      it->second = id;
      strings_[id] = {&it->first, 0};
    }
    ++strings_[it->second].refs;
    return it->second;
  }
  void Release(uint32_t id) {
    if (id == 0) return;
    if (--strings_[id].refs == 0) {
      ids_.erase(*strings_[id].s);
      strings_[id] = {};
      free_.push_back(id);
    }
  }
  const std::string& Get(uint32_t id) const {
    static const std::string kEmpty;
    return id == 0 ? kEmpty : *strings_[id].s;
  }

 private:
  struct Ref {
    const std::string* s = nullptr;
    uint64_t refs = 0;
  };
  std::unordered_map<std::string, uint32_t> ids_;
  std::vector<Ref> strings_{Ref{}};  // [0] = ""
  std::vector<uint32_t> free_;
};

struct Entry {
  Key key;
  NamespaceId ns = kDefaultNamespace;
  StoredMeta meta;  // meta.tier says where the bytes are now
  // Where the bytes are: a host slot, a device slot, or neither (spill tier).
  // Kept compact (a Slot and a DeviceSlot take 88 bytes); slot() and dev()
  // rebuild what the allocators handed out (requested = max(size, 1), as
  // every allocation of the Store asks).
  uint64_t addr = 0;      // host: the slot's address; device: its offset
  uint64_t offset = 0;    // host: offset within the arena
  uint64_t capacity = 0;  // 0 = no slot
  uint32_t size_class = 0;
  bool on_device = false;
  std::chrono::steady_clock::time_point expires = std::chrono::steady_clock::time_point::max();
  uint32_t pins = 0;      // readers of the bytes (select deliveries, tier moves)
  uint32_t takers = 1;    // drop_selects that must each get the bytes; the last removes it
  bool indexed = false;   // in the index (visible); false when claimed or doomed
  bool doomed = false;    // dropped while pinned: freed when the last pin goes
  bool in_spill = false;  // a copy is on the spill tier
  bool moving = false;    // a promotion or a device->host move is under way
  // Links of the host tier's LRU (Store::lru_) or the device tier's
  // (Store::device_lru_) while indexed there; entry_list.h.
  Entry* lru_prev = nullptr;
  Entry* lru_next = nullptr;
  // Links of its expiry bucket (Store::ttl_buckets_) while indexed with a TTL.
  Entry* ttl_prev = nullptr;
  Entry* ttl_next = nullptr;
  NsKey id() const { return {ns, key}; }
  std::span<const std::byte> bytes() const {
    return {in_host() ? reinterpret_cast<const std::byte*>(addr) : nullptr,
            in_host() ? meta.size : 0};
  }
  bool in_host() const { return capacity != 0 && !on_device; }
  bool in_device() const { return capacity != 0 && on_device; }  // never both
  Slot slot() const {
    return Slot{reinterpret_cast<std::byte*>(addr), meta.size, capacity, offset, size_class,
                std::max<uint64_t>(meta.size, 1)};
  }
  DeviceSlot dev() const {
    return DeviceSlot{addr, meta.size, capacity, size_class, std::max<uint64_t>(meta.size, 1)};
  }
  void set_slot(const Slot& s) {
    addr = reinterpret_cast<uint64_t>(s.data);
    offset = s.offset;
    capacity = s.capacity;
    size_class = s.size_class;
    on_device = false;
  }
  void set_dev(const DeviceSlot& d) {
    addr = d.offset;
    offset = 0;
    capacity = d.capacity;
    size_class = d.size_class;
    on_device = true;
  }
  void clear_place() {
    addr = offset = capacity = 0;
    size_class = 0;
    on_device = false;
  }
};

}  // namespace kvstore::server
