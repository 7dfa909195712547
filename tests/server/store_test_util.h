// Helpers the Store's unit tests share (store_test.cc, store_index_test.cc).
#pragma once

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "kvstore/server/store.h"
#include "kvstore/tiers/rocksdb_spill.h"
#include "status_matchers.h"

namespace kvstore::server::store_test {

inline Key K(uint32_t i) {
  std::vector<uint32_t> t{i};
  return ChainKey(NamespaceSeed("store-test"), t, 1);
}

// Keys of another family than K's: `i` in the last 4 bytes under a fixed first byte.
inline Key Big(uint32_t i, std::byte first = std::byte{0xee}) {
  Key k;
  std::memcpy(k.bytes.data() + 28, &i, 4);
  k.bytes[0] = first;
  return k;
}

inline StoreOptions Opts(uint64_t memory = 64 << 20) {
  StoreOptions o;
  o.memory_bytes = memory;
  o.default_ttl = std::chrono::milliseconds(0);
  return o;
}

inline Status Put(Store& s, const Key& k, const std::vector<std::byte>& v) {
  EntryMeta m;
  m.size = v.size();
  m.checksum = ValueChecksum(v);
  auto r = s.Reserve(k, m, {});
  if (!r.ok()) return r.status();
  if (r->exists) return Status::Ok();
  if (!v.empty()) std::memcpy(r->slot.data, v.data(), v.size());
  auto c = s.Commit(std::move(r).value());
  return c.ok() ? Status::Ok() : c.status();
}

inline std::vector<std::byte> Bytes(size_t n, uint8_t fill) {
  return std::vector<std::byte>(n, std::byte{fill});
}

inline constexpr uint64_t kMiB = 1 << 20;

inline std::vector<std::byte> Value(size_t n, uint64_t seed) {
  std::vector<std::byte> v(n);
  std::mt19937_64 rng(seed);
  for (auto& b : v) b = static_cast<std::byte>(rng());
  return v;
}

inline const TierStats* Row(const StoreStats& s, Tier t) {
  for (const auto& row : s.tiers) {
    if (row.tier == t) return &row;
  }
  return nullptr;
}

inline uint64_t EntriesIn(Store& s, Tier t) {
  const StoreStats st = s.Stats();
  const TierStats* row = Row(st, t);
  return row ? row->entries : 0;
}

inline std::optional<Tier> TierOf(Store& s, const Key& k) {
  std::span<const std::byte> key(k.bytes);
  ListPage page = s.List({}, 1, -1, key);
  if (page.entries.empty()) return std::nullopt;
  return page.entries[0].meta.tier;
}

// Polls the tier worker's progress; false when `pred` is still false after 10 s.
inline bool Eventually(const std::function<bool()>& pred) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

// A select or drop_select whose callback may run on the tier worker.
inline Result<std::unique_ptr<Delivery>> Take(Store& s, std::vector<Key> keys, bool drop) {
  struct Got {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<Result<std::unique_ptr<Delivery>>> result;
  };
  auto got = std::make_shared<Got>();
  DeliveryCallback cb = [got](Result<std::unique_ptr<Delivery>> r) {
    std::lock_guard lock(got->mu);
    got->result.emplace(std::move(r));
    got->cv.notify_all();
  };
  uint64_t waiter = 0;
  if (drop) {
    waiter = s.DropSelect(keys, cb);
  } else {
    s.Select(keys, cb);
  }
  std::unique_lock lock(got->mu);
  if (!got->cv.wait_for(lock, std::chrono::seconds(10), [&] { return got->result.has_value(); })) {
    lock.unlock();
    if (waiter != 0) s.CancelWaiter(waiter);
    return Status::Timeout("no delivery within 10 s");
  }
  return std::move(*got->result);
}

// The bytes a select or drop_select delivers for its one key; finishes the delivery.
inline std::vector<std::byte> TakeBytes(Store& s, const Key& k, bool drop) {
  auto d = Take(s, {k}, drop);
  EXPECT_OK(d);
  if (!d.ok()) return {};
  std::vector<std::byte> out((*d)->entries()[0].bytes.begin(), (*d)->entries()[0].bytes.end());
  (*d)->Finish(true);
  return out;
}

class SpillDir {
 public:
  SpillDir() {
    std::string t = (std::filesystem::temp_directory_path() / "kvstore-store-test-XXXXXX").string();
    path_ = ::mkdtemp(t.data());
  }
  ~SpillDir() { std::filesystem::remove_all(path_); }
  std::unique_ptr<tiers::SpillStore> Open() const {
    tiers::SpillOptions o;
    o.dir = path_;
    o.capacity_bytes = 256 * kMiB;
    o.segment_bytes = 4 * kMiB;
    auto spill = tiers::RocksDbSpill::Open(o);
    EXPECT_OK(spill);
    return spill.ok() ? std::move(spill).value() : nullptr;
  }

 private:
  std::string path_;
};

}  // namespace kvstore::server::store_test
