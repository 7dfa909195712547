// Wire framing shared by the daemon and the client library.
//
// Every message is: FrameHeader | control (Cap'n Proto flat array) | bulk bytes.
// See schema/kvstore.capnp for the message types.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "kvstore/status.h"

namespace kvstore {

inline constexpr uint32_t kFrameMagic = 0x3153564bu;  // "KVS1" little-endian
inline constexpr size_t kFrameHeaderSize = 16;
// An insert's value may be followed by its XXH3-64 (InsertRequest.checksumTrailer).
inline constexpr size_t kChecksumTrailerBytes = 8;
// Control messages are small (keys and metadata); anything larger is garbage.
inline constexpr uint32_t kMaxControlBytes = 4u << 20;

struct FrameHeader {
  uint32_t magic = kFrameMagic;
  uint32_t control_len = 0;  // bytes; a multiple of 8 (Cap'n Proto words)
  uint64_t bulk_len = 0;     // bytes of raw value data after the control part

  void Encode(std::byte out[kFrameHeaderSize]) const {
    std::memcpy(out, &magic, 4);
    std::memcpy(out + 4, &control_len, 4);
    std::memcpy(out + 8, &bulk_len, 8);
  }
  // Checks magic and bounds; `max_bulk` is the largest bulk part the reader accepts.
  static Result<FrameHeader> Decode(const std::byte in[kFrameHeaderSize], uint64_t max_bulk) {
    FrameHeader h;
    std::memcpy(&h.magic, in, 4);
    std::memcpy(&h.control_len, in + 4, 4);
    std::memcpy(&h.bulk_len, in + 8, 8);
    if (h.magic != kFrameMagic) {
      return Status::InvalidArgument("bad frame magic: not a kvstore client or a corrupted stream");
    }
    if (h.control_len == 0 || h.control_len % 8 != 0 || h.control_len > kMaxControlBytes) {
      return Status::InvalidArgument("bad control length " + std::to_string(h.control_len) +
                                     " (must be a positive multiple of 8, at most " +
                                     std::to_string(kMaxControlBytes) + ")");
    }
    if (h.bulk_len > max_bulk) {
      return Status::InvalidArgument("bulk length " + std::to_string(h.bulk_len) +
                                     " exceeds the limit of " + std::to_string(max_bulk));
    }
    return h;
  }
};
static_assert(kFrameHeaderSize == 4 + 4 + 8);

}  // namespace kvstore
