// QpParams: what one end of an RC queue pair tells the other so both can move
// to RTR/RTS. It rides, encoded, in the Hello message's rdmaParams bytes.
//
// Wire layout, version 1, 32 bytes, little-endian, every field fixed:
//   [0]  u8  version (= kQpParamsVersion)
//   [1]  u8  port             (>= 1)
//   [2]  u8  gid_index
//   [3]  u8  mtu              (ibv_mtu: 1=256 .. 5=4096)
//   [4]  u16 lid
//   [6]  u8  max_rd_atomic    (RDMA READs this end accepts in flight, 1..255)
//   [7]  u8  reserved         (= 0)
//   [8]  u32 qpn              (1 .. 2^24-1)
//   [12] u32 psn              (0 .. 2^24-1)
//   [16] u8  gid[16]          (all zero = no GRH; then lid must be set)
// Decode rejects anything else; a decoded value re-encodes to the same bytes.
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <infiniband/verbs.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kvstore/status.h"

namespace kvstore::rdma {

inline constexpr uint8_t kQpParamsVersion = 1;
inline constexpr size_t kQpParamsEncodedSize = 32;
inline constexpr uint32_t kMaxQpn = (1u << 24) - 1;  // QPNs and PSNs are 24-bit

struct QpParams {
  uint16_t lid = 0;
  std::array<uint8_t, 16> gid{};  // all zero: no GRH (InfiniBand, same subnet)
  uint32_t qpn = 0;
  uint32_t psn = 0;
  uint8_t port = 1;
  uint8_t gid_index = 0;
  ibv_mtu mtu = IBV_MTU_1024;
  uint8_t max_rd_atomic = 1;

  bool HasGid() const;
  // Fixed 32-byte layout above.
  std::vector<std::byte> Encode() const;
  // Rejects wrong length or version, mtu outside 1..5, qpn 0 or > 24 bits,
  // psn > 24 bits, port 0, max_rd_atomic 0, nonzero reserved byte, and a value
  // with neither lid nor gid. Errors are InvalidArgument naming the field.
  static Result<QpParams> Decode(std::span<const std::byte> bytes);
  // "qpn=0x000123 psn=0x0abcde lid=0 port=1 gid_index=3 mtu=4096 gid=fe80::..."
  std::string ToString() const;

  bool operator==(const QpParams&) const = default;
};

// The path MTU two ends can both use: the smaller one.
ibv_mtu PathMtu(ibv_mtu a, ibv_mtu b);
// 256, 512, 1024, 2048, 4096 for IBV_MTU_256..4096; 0 for anything else.
uint32_t MtuBytes(ibv_mtu mtu);

}  // namespace kvstore::rdma
