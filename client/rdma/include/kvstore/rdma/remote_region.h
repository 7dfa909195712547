// RemoteRegion: a peer's registered memory as it is described on the wire
// (address, rkey, length), and the bounds check every wire offset goes through
// before a work request may name it.
//
// Wire layout, version 1, 24 bytes, little-endian:
//   [0] u8 version (= 1)  [1..3] reserved (= 0)  [4] u32 rkey
//   [8] u64 addr          [16] u64 length
// Decode rejects other lengths/versions, nonzero reserved bytes, length 0 and
// addr + length overflowing 64 bits.
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "kvstore/status.h"

namespace kvstore::rdma {

inline constexpr uint8_t kRemoteRegionVersion = 1;
inline constexpr size_t kRemoteRegionEncodedSize = 24;

struct RemoteRegion {
  uint64_t addr = 0;
  uint32_t rkey = 0;
  uint64_t length = 0;

  std::vector<std::byte> Encode() const;
  static Result<RemoteRegion> Decode(std::span<const std::byte> bytes);

  bool operator==(const RemoteRegion&) const = default;
};

// Where a work request lands on the peer: the target of PostRead/PostWrite.
struct RemoteAddress {
  uint64_t addr = 0;
  uint32_t rkey = 0;

  bool operator==(const RemoteAddress&) const = default;
};

// Resolves [offset, offset + length) inside region to a remote address.
// InvalidArgument when length is 0, offset + length overflows, or the range
// leaves the region. Call this on every offset/length that came from the wire.
Result<RemoteAddress> ResolveRemote(const RemoteRegion& region, uint64_t offset, uint64_t length);

}  // namespace kvstore::rdma
