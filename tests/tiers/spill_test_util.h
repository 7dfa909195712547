// Keys, values and metadata for the spill tier's tests: distinct keys by
// number, reproducible random values by seed, and the EntryMeta of a value.
#pragma once

#include <stdlib.h>

#include <cstdint>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <xxhash.h>

#include "kvstore/key.h"
#include "kvstore/types.h"

namespace kvstore::tiers::test {

inline constexpr uint64_t KiB = 1024, MiB = 1024 * 1024;

inline Key MakeKey(uint32_t i) {
  Key k;
  for (size_t j = 0; j < Key::kSize; ++j) k.bytes[j] = std::byte((i >> (8 * (j % 4))) + j * 31);
  return k;
}

inline std::vector<std::byte> MakeValue(uint64_t size, uint32_t seed) {
  std::vector<std::byte> v(size);
  std::mt19937_64 rng(seed);
  for (auto& b : v) b = std::byte(rng());
  return v;
}

inline EntryMeta MetaFor(std::span<const std::byte> v) {
  EntryMeta m;
  m.size = v.size();
  m.checksum = XXH3_64bits(v.data(), v.size());
  m.layout = "test/f16";
  m.producer = "spill-test";
  m.created_unix_ms = 1700000000000ull;
  return m;
}

// A fresh directory /tmp/<prefix>-XXXXXX for a spill tier; the caller removes it.
inline std::string MakeSpillDir(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp " + tmpl);
  return tmpl;
}

}  // namespace kvstore::tiers::test
