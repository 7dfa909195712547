// The store's value types, shared by kvstored and libkvstore: entry metadata,
// tiers, statistics, list pages, and the value checksum.
//
// Thread-safety: plain values; ValueChecksum is a pure function.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvstore/key.h"

namespace kvstore {

enum class Tier : uint8_t { kDevice = 0, kHost = 1, kSpill = 2 };
std::string_view TierName(Tier t);

struct EntryMeta {
  uint64_t size = 0;
  uint64_t checksum = 0;  // XXH3-64 of the value; Insert fills it in
  std::string layout;     // free-form, e.g. "llama-tiny/f32/L4/kv2/d32/b16/v1"
  std::string producer;
  uint64_t created_unix_ms = 0;
  uint64_t expires_unix_ms = 0;  // 0 = never
  Tier tier = Tier::kHost;
};

struct Entry {
  Key key;
  EntryMeta meta;
  std::vector<std::byte> value;
};

struct EntryInfo {
  Key key;
  EntryMeta meta;
};

struct TierStats {
  Tier tier = Tier::kHost;
  uint64_t entries = 0;
  uint64_t bytes = 0;
  uint64_t capacity_bytes = 0;
  uint64_t used_bytes = 0;
};

struct StoreStats {
  std::vector<TierStats> tiers;
  uint64_t waiters = 0;
  uint64_t connections = 0;
  uint64_t inserts = 0;
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t ttl_expired = 0;
  uint64_t evictions = 0;
  uint64_t promotions = 0;
  uint64_t refused_inserts = 0;
  uint64_t checksum_failures = 0;
  uint64_t uptime_seconds = 0;
  double fragmentation = 0;
  uint64_t staged_transfers = 0;
  std::string version;
};

struct ListPage {
  std::vector<EntryInfo> entries;
  std::vector<std::byte> next_cursor;  // empty = no more
};

// XXH3-64 of a value, as stored in EntryMeta::checksum.
uint64_t ValueChecksum(std::span<const std::byte> value);

}  // namespace kvstore
