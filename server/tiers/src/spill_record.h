// The spill index record: where a value lives in the value log, and its EntryMeta.
//
// Encoding (version 1), little-endian:
//   u8 version=1 | u64 segment | u64 offset | u64 stored_bytes |
//   u64 size | u64 checksum | u64 created_unix_ms | u64 expires_unix_ms |
//   u32 len + layout bytes | u32 len + producer bytes
// A decoder accepts trailing bytes (fields appended by later versions of the
// same major layout) and refuses a record shorter than its fields.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kvstore/status.h"
#include "kvstore/types.h"

namespace kvstore::tiers {

struct SpillLocation {
  uint64_t segment = 0;
  uint64_t offset = 0;        // 4 KiB-aligned
  uint64_t stored_bytes = 0;  // size rounded up to 4 KiB
};

struct SpillRecord {
  SpillLocation location;
  EntryMeta meta;
};

inline constexpr uint8_t kSpillRecordVersion = 1;

std::string EncodeSpillRecord(const SpillRecord& record);
// DataLoss when the bytes are not a record this code can read.
Result<SpillRecord> DecodeSpillRecord(std::string_view bytes);

}  // namespace kvstore::tiers
