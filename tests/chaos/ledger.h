// What the chaos suite wrote, and the checks it applies to what the store
// serves afterwards.
//
// Every value is derived from its key (a PRNG seeded with the key's bytes), so
// any read can be checked without keeping the bytes. The Ledger keeps, per key
// ever attempted, its size and whether the store acknowledged it; a listed key
// the ledger never saw is a phantom, an acknowledged key that is gone is lost.
//
// Thread-safety: Ledger is safe to share between threads; Verify is not
// reentrant per Ledger.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "kvstore/client.h"
#include "kvstore/key.h"

namespace kvstore::chaos {

// Key i of run `run` (a run is one scenario of one process).
Key ChaosKey(uint64_t run, uint64_t i);
// The value stored under `key`, `size` bytes.
std::vector<std::byte> ValueFor(const Key& key, size_t size);
// A size in [min, max] chosen by the key's bytes.
size_t SizeFor(const Key& key, size_t min, size_t max);

struct VerifyResult {
  uint64_t listed = 0;
  uint64_t read = 0;     // values read back and compared
  uint64_t corrupt = 0;  // served bytes or metadata that are not what was written
  uint64_t phantom = 0;  // listed keys that were never written
  uint64_t lost = 0;     // acknowledged, never removed, and gone
  uint64_t refused = 0;  // reads refused (also after retries): not served, not corrupt
  uint64_t retried = 0;  // reads refused at first (ResourceExhausted) and retried
  std::string first_refusal;
  std::vector<Key> present;  // every listed key
  std::string first_problem;
};

class Ledger {
 public:
  void Attempt(const Key& key, size_t size);
  void Ack(const Key& key);
  // The key left legitimately (removed, or taken by a drop_select).
  void Forget(const Key& key);
  uint64_t acknowledged_total() const;
  uint64_t acknowledged_bytes() const;
  std::optional<size_t> SizeOf(const Key& key) const;
  // Lists everything, reads every listed value back and compares it with what
  // was written. Keys acknowledged but absent count as lost, and are forgotten
  // (so a later check does not count them again).
  VerifyResult Verify(Client& client);
  // A random acknowledged key, for readers during load.
  std::optional<Key> RandomAcked(uint64_t seed) const;

 private:
  struct Expect {
    size_t size = 0;
    bool acked = false;
  };
  mutable std::mutex mu_;
  std::unordered_map<Key, Expect, KeyHash> keys_;
  std::vector<Key> acked_order_;
  uint64_t acknowledged_total_ = 0;
  uint64_t acknowledged_bytes_ = 0;
};

// Compares one read with the ledger's expectation; the reason when it is wrong.
std::optional<std::string> CheckValue(const Key& key, size_t expected_size, const EntryMeta& meta,
                                      std::span<const std::byte> value);

}  // namespace kvstore::chaos
