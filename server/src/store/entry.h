// One stored entry, as the Store keeps it, and the interned strings of its
// metadata. Private to the Store's sources; not synchronized (the Store's mutex).
//
// An Entry is 80 bytes (kEntryBytes, checked below) in an EntryPool
// (entry_pool.h): no per-entry heap block, and 32-bit entry ids stand in for
// pointers in the index, the LRU links and the expiry buckets. What it keeps,
// and at what width:
//   key 32 B, checksum 64 bits;
//   addr 48 bits: a host slot's address (user-space addresses are below 2^48)
//     or a device slot's offset; the slot's capacity, offset in the arena and
//     the Allocation Free needs are rebuilt from (addr, size_class, size) by
//     the memory that handed it out (HostMemory::SlotAt, DeviceMemory::SlotAt);
//   size 40 bits (1 TiB; --max-value is far below), size_class 8 bits
//     (kDirectSizeClass for the allocator's kDirectClass);
//   created_unix_ms 48 bits (to the year 10889);
//   expiry: the Store's 16 ms TTL bucket + 1 (0 = never), 32 bits: expiry is
//     rounded up to the end of its bucket (at most 16 ms late; EntryMeta's
//     expires_unix_ms reports that end), and a deadline past 2^32 - 1 buckets
//     after the Store started (~2.2 years) is clamped to that;
//   layout, producer: 16-bit StringTable ids (kMaxStringIds distinct strings
//     at once; an insert bringing one more is refused with ResourceExhausted);
//   ns: 32 bits; LRU links: entry ids;
//   pins and takers beyond the first: a bit each saying the count is in the
//     pool's EntryCounts (most entries are neither being read nor retained,
//     and those that are, are so only while a delivery or a handoff is under
//     way), so no cap of the daemon has to bound them.
#pragma once

#include <cassert>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "kvstore/key.h"
#include "kvstore/server/ns_key.h"
#include "kvstore/types.h"

namespace kvstore::server {

// Interned strings with reference counts; ids fit 16 bits.
class StringTable {
 public:
  static constexpr uint32_t kMaxStringIds = 65535;  // ids 1..65535; 0 = ""
  // nullopt when `s` is new and kMaxStringIds strings are in use.
  std::optional<uint16_t> Intern(const std::string& s) {
    if (s.empty()) return uint16_t{0};
    auto it = ids_.find(s);
    if (it == ids_.end()) {
      uint32_t id;
      if (!free_.empty()) {
        id = free_.back();
        free_.pop_back();
      } else if (strings_.size() <= kMaxStringIds) {
        id = static_cast<uint32_t>(strings_.size());
        strings_.emplace_back();
      } else {
        return std::nullopt;
      }
      it = ids_.emplace(s, static_cast<uint16_t>(id)).first;
      strings_[id] = {&it->first, 0};
    }
    ++strings_[it->second].refs;
    return it->second;
  }
  void Release(uint16_t id) {
    if (id == 0) return;
    if (--strings_[id].refs == 0) {
      ids_.erase(*strings_[id].s);
      strings_[id] = {};
      free_.push_back(id);
    }
  }
  const std::string& Get(uint16_t id) const {
    static const std::string kEmpty;
    return id == 0 ? kEmpty : *strings_[id].s;
  }
  size_t size() const { return ids_.size(); }

 private:
  struct Ref {
    const std::string* s = nullptr;
    uint64_t refs = 0;
  };
  std::unordered_map<std::string, uint16_t> ids_;
  std::vector<Ref> strings_{Ref{}};  // [0] = ""
  std::vector<uint16_t> free_;
};

// The size_class an Entry keeps for a direct run (the allocator's kDirectClass).
inline constexpr uint32_t kDirectSizeClass = 255;
// Values must be smaller (Store::Reserve refuses larger ones).
inline constexpr uint64_t kMaxEntryValueBytes = (uint64_t{1} << 40) - 1;

struct Entry {
  Key key;
  uint64_t checksum = 0;

 private:
  uint64_t addr_ : 48 = 0;  // host: the slot's address; device: its offset
  uint64_t producer_ : 16 = 0;
  uint64_t size_ : 40 = 0;
  uint64_t size_class_ : 8 = 0;
  uint64_t tier_ : 2 = static_cast<uint64_t>(Tier::kHost);
  uint64_t has_slot_ : 1 = 0;
  uint64_t on_device_ : 1 = 0;

 public:
  bool indexed : 1 = false;   // in the index (visible); false when claimed or doomed
  bool doomed : 1 = false;    // dropped while pinned: freed when the last pin goes
  bool in_spill : 1 = false;  // a copy is on the spill tier
  bool moving : 1 = false;    // a promotion or a demotion is under way
  bool pinned : 1 = false;    // has read pins (counted in EntryCounts)
  bool retained : 1 = false;  // has takers beyond the first (counted in EntryCounts)

 private:
  uint64_t created_unix_ms_ : 48 = 0;
  uint64_t layout_ : 16 = 0;

 public:
  uint32_t expiry = 0;  // TTL bucket + 1 (Store::TtlBucket); 0 = never
  NamespaceId ns = kDefaultNamespace;
  // Links of the LRU of the tier it is indexed in (StoreTier), as entry ids; 0 = none.
  // A free entry of the pool links the free list through lru_next.
  uint32_t lru_prev = 0;
  uint32_t lru_next = 0;

  NsKey id() const { return {ns, key}; }
  uint64_t size() const { return size_; }
  // REQUIRES: s <= kMaxEntryValueBytes.
  void set_size(uint64_t s) {
    assert(s <= kMaxEntryValueBytes);
    size_ = s;
  }
  Tier tier() const { return static_cast<Tier>(tier_); }
  void set_tier(Tier t) { tier_ = static_cast<uint64_t>(t); }
  uint16_t layout() const { return static_cast<uint16_t>(layout_); }
  uint16_t producer() const { return static_cast<uint16_t>(producer_); }
  void set_strings(uint16_t layout, uint16_t producer) {
    layout_ = layout;
    producer_ = producer;
  }
  uint64_t created_unix_ms() const { return created_unix_ms_; }
  void set_created_unix_ms(uint64_t ms) { created_unix_ms_ = ms & ((uint64_t{1} << 48) - 1); }

  std::span<const std::byte> bytes() const {
    return {in_host() ? host_data() : nullptr, in_host() ? size() : 0};
  }
  bool in_host() const { return has_slot_ && !on_device_; }
  bool in_device() const { return has_slot_ && on_device_; }  // never both
  std::byte* host_data() const { return reinterpret_cast<std::byte*>(uint64_t{addr_}); }
  uint64_t device_offset() const { return addr_; }
  // The allocator's size class (kDirectClass for a direct run).
  uint32_t size_class() const {
    return size_class_ == kDirectSizeClass ? UINT32_MAX : static_cast<uint32_t>(size_class_);
  }
  // Where the bytes are now: a host slot at `data`, a device slot at `offset`.
  void set_host_slot(std::byte* data, uint32_t size_class) {
    SetPlace(reinterpret_cast<uint64_t>(data), size_class, false);
  }
  void set_device_slot(uint64_t offset, uint32_t size_class) { SetPlace(offset, size_class, true); }
  void clear_place() {
    addr_ = 0;
    size_class_ = 0;
    has_slot_ = on_device_ = 0;
  }

 private:
  void SetPlace(uint64_t addr, uint32_t size_class, bool device) {
    if (addr >= (uint64_t{1} << 48)) {
      // User-space addresses (without 5-level paging's opt-in) and device
      // offsets are below 2^48; a slot above would be found at the wrong address.
      std::fprintf(stderr, "Entry: slot address %#llx does not fit 48 bits\n",
                   static_cast<unsigned long long>(addr));
      std::abort();
    }
    assert(size_class == UINT32_MAX || size_class < kDirectSizeClass);
    addr_ = addr;
    size_class_ = size_class == UINT32_MAX ? kDirectSizeClass : size_class;
    has_slot_ = 1;
    on_device_ = device ? 1 : 0;
  }
};

inline constexpr size_t kEntryBytes = 80;
static_assert(sizeof(Entry) == kEntryBytes, "Entry layout changed: update kEntryBytes and tests");

}  // namespace kvstore::server
