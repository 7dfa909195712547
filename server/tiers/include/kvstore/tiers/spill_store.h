// SpillStore: the disk tier under the memory tiers, as an interface so tests can
// wrap it (fault injection) and the Store can be tested without a disk.
//
// An entry is a SpillKey (namespace and key), its EntryMeta and the value bytes. The spill tier
// stores what it is given; it does not evict. The Store decides what to demote, what to promote and
// when to delete.
//
// Thread-safety: implementations are safe to call from several threads at once
// (a demotion thread writing while request threads promote), except that calls
// on the same key must not race each other (the Store's index serializes them).
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "kvstore/key.h"
#include "kvstore/status.h"
#include "kvstore/tiers/namespace_id.h"
#include "kvstore/types.h"

namespace kvstore::tiers {

// What the spill tier files an entry under: its key within its namespace.
struct SpillKey {
  Key key;
  NamespaceId ns = kDefaultNamespace;
  // Implicit: a bare Key is a key of the default namespace.
  SpillKey(const Key& k, NamespaceId n = kDefaultNamespace) : key(k), ns(n) {}  // NOLINT
  bool operator==(const SpillKey&) const = default;
};

struct SpillStats {
  uint64_t entries = 0;
  uint64_t bytes = 0;           // sum of meta.size of live entries
  uint64_t capacity_bytes = 0;  // the --spill limit on `bytes` (as stored, 4 KiB-rounded)
  uint64_t disk_bytes = 0;      // bytes of value files on disk, live and garbage
  uint64_t write_bytes = 0;     // value bytes written since open (Put and compaction)
  uint64_t read_bytes = 0;      // value bytes read since open
  uint64_t puts = 0;
  uint64_t gets = 0;
  uint64_t deletes = 0;
  uint64_t refused_puts = 0;       // ResourceExhausted
  uint64_t checksum_failures = 0;  // DataLoss on Get
  uint64_t compacted_bytes = 0;    // live bytes moved to reclaim garbage
};

class SpillStore {
 public:
  virtual ~SpillStore() = default;

  // Stores `value` under `key`, replacing any previous value. When it returns OK
  // the entry has reached spill (see the implementation for the exact promise).
  // REQUIRES: meta.size == value.size(); meta.checksum == XXH3-64 of value.
  // ResourceExhausted when the capacity would be exceeded (nothing changes).
  virtual Status Put(const SpillKey& key, const EntryMeta& meta,
                     std::span<const std::byte> value) = 0;

  // Metadata without the value (meta.tier is Tier::kSpill). NotFound when absent.
  virtual Result<EntryMeta> GetMeta(const SpillKey& key) = 0;

  // Reads the value into dst[0, meta.size) and, when `meta` is not null, its metadata.
  // InvalidArgument when dst is smaller than the value; NotFound when absent;
  // DataLoss when the bytes fail their checksum: the entry is deleted then, and dst
  // holds garbage that must not be served.
  virtual Status Get(const SpillKey& key, std::span<std::byte> dst, EntryMeta* meta) = 0;

  // NotFound when absent.
  virtual Status Delete(const SpillKey& key) = 0;

  // Calls fn for every entry, in key order, without reading values; stops early
  // when fn returns false. For rebuilding an index at open (warm restart).
  // REQUIRES: fn does not call back into this store.
  virtual Status ForEach(const std::function<bool(const SpillKey&, const EntryMeta&)>& fn) = 0;

  // Makes everything Put so far durable against power loss, not only process death.
  virtual Status Flush() = 0;

  virtual SpillStats Stats() const = 0;
};

}  // namespace kvstore::tiers
