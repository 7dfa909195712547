// Values derived from their keys, so any read can be checked without keeping
// the bytes: a PRNG seeded with the key's bytes fills the value. Needs only the
// base library (the Store-level fault tests use it without the client).
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kvstore/key.h"
#include "kvstore/types.h"

namespace kvstore::chaos {

// Key i of run `run` (a run is one scenario of one process).
Key ChaosKey(uint64_t run, uint64_t i);
// The value stored under `key`, `size` bytes.
std::vector<std::byte> ValueFor(const Key& key, size_t size);
// A size in [min, max] chosen by the key's bytes.
size_t SizeFor(const Key& key, size_t min, size_t max);
// Compares one read with what was written; the reason when it is wrong.
std::optional<std::string> CheckValue(const Key& key, size_t expected_size, const EntryMeta& meta,
                                      std::span<const std::byte> value);

}  // namespace kvstore::chaos
