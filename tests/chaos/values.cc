#include "values.h"

#include <algorithm>
#include <cstring>

namespace kvstore::chaos {

Key ChaosKey(uint64_t run, uint64_t i) {
  static const Key seed = NamespaceSeed("kvstore-chaos");
  const uint32_t tokens[4] = {static_cast<uint32_t>(run), static_cast<uint32_t>(run >> 32),
                              static_cast<uint32_t>(i), static_cast<uint32_t>(i >> 32)};
  return ChainKey(seed, tokens, 4);
}

namespace {

uint64_t Word(const Key& key, size_t at) {
  uint64_t w;
  std::memcpy(&w, key.bytes.data() + at, 8);
  return w;
}

}  // namespace

size_t SizeFor(const Key& key, size_t min, size_t max) {
  return min + static_cast<size_t>(Word(key, 8) % (max - min + 1));
}

std::vector<std::byte> ValueFor(const Key& key, size_t size) {
  std::vector<std::byte> v(size);
  uint64_t x = Word(key, 0) | 1;  // xorshift64*: fast, and never all zero
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    const uint64_t r = x * 0x2545f4914f6cdd1dull;
    std::memcpy(v.data() + i, &r, 8);
  }
  for (; i < size; ++i) v[i] = static_cast<std::byte>(i ^ Word(key, 16));
  return v;
}

std::optional<std::string> CheckValue(const Key& key, size_t expected_size, const EntryMeta& meta,
                                      std::span<const std::byte> value) {
  if (meta.size != expected_size) {
    return "size " + std::to_string(meta.size) + ", wrote " + std::to_string(expected_size);
  }
  const auto want = ValueFor(key, expected_size);
  if (meta.checksum != ValueChecksum(want)) return "metadata checksum differs from the value's";
  if (value.size() != want.size()) {
    return "served " + std::to_string(value.size()) + " bytes of " + std::to_string(want.size());
  }
  if (std::memcmp(value.data(), want.data(), want.size()) != 0) {
    auto mismatch = std::mismatch(value.begin(), value.end(), want.begin());
    return "bytes differ from offset " + std::to_string(mismatch.first - value.begin());
  }
  return std::nullopt;
}

}  // namespace kvstore::chaos
