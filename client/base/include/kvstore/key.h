// Keys: hash of prefix.
//
// A prompt is cut into blocks of `block_size` tokens; block i's key is the
// chained hash
//     h_-1 = H("kvstore/ns/v1" | namespace)
//     h_i  = H(h_{i-1} | block_size as u32 | tokens of block i as u32 LE | extra)
// (exactly: h_i = H(h_{i-1} | block_size u32 LE | token count u32 LE | tokens u32 LE | extra);
// the count keeps (tokens, extra) splits from colliding; byte layout in client/src/key.cc)
// so equal keys mean equal prefixes under the same namespace (model, KV layout,
// parallel rank). Keys are 32 bytes. The default hash is SHA-256: a prompt author
// cannot craft tokens whose key collides with another prompt's. XXH3 (two 128-bit
// lanes) is an opt-in for trusted deployments where hashing cost matters.
// Only full blocks get keys; a trailing partial block is never stored.
//
// Thread-safety: all functions are pure.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvstore/status.h"

namespace kvstore {

struct Key {
  static constexpr size_t kSize = 32;
  std::array<std::byte, kSize> bytes{};

  // 64 lowercase hex characters.
  std::string ToHex() const;
  // REQUIRES nothing: returns InvalidArgument unless `hex` is 64 hex characters.
  static Result<Key> FromHex(std::string_view hex);
  // REQUIRES nothing: InvalidArgument unless `raw` is exactly 32 bytes.
  static Result<Key> FromBytes(std::span<const std::byte> raw);

  auto operator<=>(const Key&) const = default;
  bool operator==(const Key&) const = default;
};

struct KeyHash {
  size_t operator()(const Key& k) const noexcept {
    size_t h;
    static_assert(sizeof(h) <= Key::kSize);
    __builtin_memcpy(&h, k.bytes.data(), sizeof(h));  // keys are already uniform hashes
    return h;
  }
};

enum class HashKind : uint8_t {
  kSha256 = 0,  // default: collision-resistant
  kXxh3 = 1,    // fast, for trusted deployments only
};

struct KeyOptions {
  std::string ns;            // namespace: model id, KV layout, rank. Default empty.
  uint32_t block_size = 16;  // tokens per block; must be > 0
  HashKind hash = HashKind::kSha256;
};

// The namespace seed h_-1.
Key NamespaceSeed(std::string_view ns, HashKind hash = HashKind::kSha256);

// One chain step: H(parent | block_size | tokens | extra).
Key ChainKey(const Key& parent, std::span<const uint32_t> block_tokens, uint32_t block_size,
             std::span<const std::byte> extra = {}, HashKind hash = HashKind::kSha256);

// Keys of every full block of `tokens`: tokens.size() / block_size of them.
// REQUIRES: opts.block_size > 0.
std::vector<Key> PrefixKeys(std::span<const uint32_t> tokens, const KeyOptions& opts);

// Parses "1,2,3" into token ids; InvalidArgument names the first bad item.
Result<std::vector<uint32_t>> ParseTokenList(std::string_view text);

}  // namespace kvstore

template <>
struct std::hash<kvstore::Key> : kvstore::KeyHash {};
