// Little-endian field access for the fixed wire layouts (private).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <system_error>

namespace kvstore::rdma::internal {

template <typename T>
void PutLe(std::span<std::byte> out, size_t at, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) {
    out[at + i] = static_cast<std::byte>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff);
  }
}

template <typename T>
T GetLe(std::span<const std::byte> in, size_t at) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) {
    v |= static_cast<uint64_t>(std::to_integer<uint8_t>(in[at + i])) << (8 * i);
  }
  return static_cast<T>(v);
}

// "errno 38 (Function not implemented)"
inline std::string ErrnoText(int err) {
  return "errno " + std::to_string(err) + " (" + std::system_category().message(err) + ")";
}

}  // namespace kvstore::rdma::internal
