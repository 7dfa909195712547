// The Store on its own: commit visibility, claiming, redelivery, pins.
#include "kvstore/server/store.h"

#include <gtest/gtest.h>

#include "status_matchers.h"

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <random>
#include <thread>

#include "kvstore/tiers/rocksdb_spill.h"

namespace kvstore::server {
namespace {

Key K(uint32_t i) {
  std::vector<uint32_t> t{i};
  return ChainKey(NamespaceSeed("store-test"), t, 1);
}

StoreOptions Opts(uint64_t memory = 64 << 20) {
  StoreOptions o;
  o.memory_bytes = memory;
  o.default_ttl = std::chrono::milliseconds(0);
  return o;
}

Status Put(Store& s, const Key& k, const std::vector<std::byte>& v) {
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

std::vector<std::byte> Bytes(size_t n, uint8_t fill) {
  return std::vector<std::byte>(n, std::byte{fill});
}

TEST(Store, ReservedEntryIsInvisibleUntilCommit) {
  Store s(Opts(), MakeHeapMemory(64 << 20));
  EntryMeta m;
  auto v = Bytes(100, 1);
  m.size = v.size();
  m.checksum = ValueChecksum(v);
  auto r = s.Reserve(K(1), m, {});
  ASSERT_OK(r);
  std::vector<Key> keys{K(1)};
  EXPECT_EQ(s.MatchPrefix(keys), 0u);
  std::memcpy(r->slot.data, v.data(), v.size());
  ASSERT_OK(s.Commit(std::move(r).value()));
  EXPECT_EQ(s.MatchPrefix(keys), 1u);
}

TEST(Store, FailedDeliveryPutsEntriesBackAndWakesTheNextWaiter) {
  Store s(Opts(), MakeHeapMemory(64 << 20));
  ASSERT_OK(Put(s, K(1), Bytes(100, 1)));
  std::vector<Key> keys{K(1)};
  std::unique_ptr<Delivery> first;
  s.DropSelect(keys, [&](Result<std::unique_ptr<Delivery>> r) { first = std::move(r).value(); });
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(s.MatchPrefix(keys), 0u);
  std::unique_ptr<Delivery> second;
  uint64_t id = s.DropSelect(
      keys, [&](Result<std::unique_ptr<Delivery>> r) { second = std::move(r).value(); });
  EXPECT_NE(id, 0u);
  EXPECT_EQ(second, nullptr);
  first->Finish(false);  // the first taker vanished
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(second->entries()[0].bytes[0], std::byte{1});
  second->Finish(true);
  EXPECT_EQ(s.MatchPrefix(keys), 0u);
  EXPECT_EQ(s.Stats().tiers[0].used_bytes, 0u);
}

TEST(Store, RemoveWhileBeingReadFreesAfterTheRead) {
  Store s(Opts(), MakeHeapMemory(64 << 20));
  ASSERT_OK(Put(s, K(1), Bytes(5000, 7)));
  std::vector<Key> keys{K(1)};
  std::unique_ptr<Delivery> reading;
  s.Select(keys, [&](Result<std::unique_ptr<Delivery>> r) { reading = std::move(r).value(); });
  ASSERT_NE(reading, nullptr);
  EXPECT_EQ(s.Remove(keys), 1u);
  EXPECT_GT(s.Stats().tiers[0].used_bytes, 0u);  // bytes still being sent
  EXPECT_EQ(reading->entries()[0].bytes[4999], std::byte{7});
  reading->Finish(true);
  EXPECT_EQ(s.Stats().tiers[0].used_bytes, 0u);
}

TEST(Store, CancelledWaiterNeverRuns) {
  Store s(Opts(), MakeHeapMemory(64 << 20));
  std::vector<Key> keys{K(3)};
  bool ran = false;
  uint64_t id = s.DropSelect(keys, [&](Result<std::unique_ptr<Delivery>>) { ran = true; });
  EXPECT_TRUE(s.CancelWaiter(id));
  EXPECT_FALSE(s.CancelWaiter(id));
  ASSERT_OK(Put(s, K(3), Bytes(10, 3)));
  EXPECT_FALSE(ran);
  EXPECT_EQ(s.MatchPrefix(keys), 1u);
}

TEST(Store, ChecksumMismatchIsNotStored) {
  Store s(Opts(), MakeHeapMemory(64 << 20));
  EntryMeta m;
  m.size = 10;
  m.checksum = 12345;
  auto r = s.Reserve(K(4), m, {});
  ASSERT_OK(r);
  std::memset(r->slot.data, 0, 10);
  auto c = s.Commit(std::move(r).value());
  EXPECT_EQ(c.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(s.Stats().tiers[0].used_bytes, 0u);
  EXPECT_EQ(s.counters().checksum_failures.load(), 1u);
}

}  // namespace
}  // namespace kvstore::server

namespace kvstore::server {
namespace {

TEST(Store, RetainedEntrySurvivesUntilItsLastTaker) {
  Store s(Opts(), MakeHeapMemory(64 << 20));
  ASSERT_OK(Put(s, K(1), Bytes(100, 1)));
  std::vector<Key> keys{K(1), K(2)};
  EXPECT_EQ(s.Retain(keys), 1u);  // K(2) absent: stops there
  std::vector<Key> one{K(1)};
  for (int taker = 0; taker < 2; ++taker) {
    std::unique_ptr<Delivery> d;
    s.DropSelect(one, [&](Result<std::unique_ptr<Delivery>> r) { d = std::move(r).value(); });
    ASSERT_NE(d, nullptr) << "taker " << taker;
    EXPECT_EQ(d->entries()[0].bytes[99], std::byte{1});
    if (taker == 0) {
      // A failed delivery to a shared entry keeps its taker due.
      d->Finish(false);
      s.DropSelect(one, [&](Result<std::unique_ptr<Delivery>> r) { d = std::move(r).value(); });
      ASSERT_NE(d, nullptr);
    }
    d->Finish(true);
    EXPECT_EQ(s.MatchPrefix(one), taker == 0 ? 1u : 0u);
  }
  EXPECT_EQ(s.Stats().tiers[0].used_bytes, 0u);
}

}  // namespace
}  // namespace kvstore::server

// The device tier, with MakeHostBackedDeviceMemoryForTests standing in for GPU
// memory: these check the Store's tier logic (where entries go, what moves,
// what is served), not CUDA.
namespace kvstore::server {
namespace {

constexpr uint64_t kMiB = 1 << 20;

std::vector<std::byte> Value(size_t n, uint64_t seed) {
  std::vector<std::byte> v(n);
  std::mt19937_64 rng(seed);
  for (auto& b : v) b = static_cast<std::byte>(rng());
  return v;
}

const TierStats* Row(const StoreStats& s, Tier t) {
  for (const auto& row : s.tiers) {
    if (row.tier == t) return &row;
  }
  return nullptr;
}

uint64_t EntriesIn(Store& s, Tier t) {
  const StoreStats st = s.Stats();
  const TierStats* row = Row(st, t);
  return row ? row->entries : 0;
}

std::optional<Tier> TierOf(Store& s, const Key& k) {
  std::span<const std::byte> key(k.bytes);
  ListPage page = s.List({}, 1, -1, key);
  if (page.entries.empty()) return std::nullopt;
  return page.entries[0].meta.tier;
}

// Polls the tier worker's progress; false when `pred` is still false after 10 s.
bool Eventually(const std::function<bool()>& pred) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

// A select or drop_select whose callback may run on the tier worker.
Result<std::unique_ptr<Delivery>> Take(Store& s, std::vector<Key> keys, bool drop) {
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
std::vector<std::byte> TakeBytes(Store& s, const Key& k, bool drop) {
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

TEST(StoreDeviceTier, CommittedEntriesLandInTheDeviceTier) {
  Store s(Opts(), MakeHeapMemory(16 * kMiB), nullptr, MakeHostBackedDeviceMemoryForTests(8 * kMiB));
  ASSERT_OK(s.Open());
  for (uint32_t i = 1; i <= 3; ++i) ASSERT_OK(Put(s, K(i), Value(100000, i)));
  StoreStats st = s.Stats();
  ASSERT_NE(Row(st, Tier::kDevice), nullptr);
  EXPECT_EQ(Row(st, Tier::kDevice)->entries, 3u);
  EXPECT_EQ(Row(st, Tier::kDevice)->bytes, 300000u);
  EXPECT_GT(Row(st, Tier::kDevice)->used_bytes, 0u);
  EXPECT_EQ(Row(st, Tier::kHost)->entries, 0u);
  EXPECT_EQ(Row(st, Tier::kHost)->used_bytes, 0u);  // the host slots were freed
  ListPage page = s.List({}, 0, static_cast<int>(Tier::kDevice), {});
  ASSERT_EQ(page.entries.size(), 3u);
  for (const auto& e : page.entries) EXPECT_EQ(e.meta.tier, Tier::kDevice);
  EXPECT_EQ(s.counters().device_admissions.load(), 3u);
  EXPECT_EQ(st.staged_transfers, 0u);
}

TEST(StoreDeviceTier, SelectAndDropSelectStageDeviceEntriesIntoHostByteExact) {
  Store s(Opts(), MakeHeapMemory(16 * kMiB), nullptr, MakeHostBackedDeviceMemoryForTests(8 * kMiB));
  ASSERT_OK(s.Open());
  const auto v1 = Value(300000, 1), v2 = Value(300001, 2), v3 = Value(0, 3);
  ASSERT_OK(Put(s, K(1), v1));
  ASSERT_OK(Put(s, K(2), v2));
  ASSERT_OK(Put(s, K(3), v3));
  ASSERT_EQ(TierOf(s, K(1)), Tier::kDevice);

  EXPECT_EQ(TakeBytes(s, K(1), /*drop=*/false), v1);
  EXPECT_EQ(s.Stats().staged_transfers, 1u);
  EXPECT_EQ(TierOf(s, K(1)), Tier::kHost);  // staged: served from host from now on
  EXPECT_EQ(TakeBytes(s, K(1), /*drop=*/false), v1);
  EXPECT_EQ(s.Stats().staged_transfers, 1u);

  EXPECT_EQ(TakeBytes(s, K(2), /*drop=*/true), v2);
  EXPECT_EQ(s.Stats().staged_transfers, 2u);
  std::vector<Key> two{K(2)};
  EXPECT_EQ(s.MatchPrefix(two), 0u);

  // An empty value stages too; a mixed select (host + device) gets both.
  auto d = Take(s, {K(1), K(3)}, /*drop=*/false);
  ASSERT_OK(d);
  ASSERT_EQ((*d)->entries().size(), 2u);
  EXPECT_TRUE(std::equal(v1.begin(), v1.end(), (*d)->entries()[0].bytes.begin()));
  EXPECT_EQ((*d)->entries()[1].bytes.size(), 0u);
  (*d)->Finish(true);
  EXPECT_EQ(s.Stats().staged_transfers, 3u);
  EXPECT_EQ(s.counters().staged_transfers.load(), 3u);
  StoreStats st = s.Stats();
  EXPECT_EQ(Row(st, Tier::kDevice)->entries, 0u);
  EXPECT_EQ(Row(st, Tier::kDevice)->used_bytes, 0u);
  EXPECT_EQ(Row(st, Tier::kHost)->entries, 2u);
}

TEST(StoreDeviceTier, AValueADropSelectIsWaitingForStaysInHost) {
  Store s(Opts(), MakeHeapMemory(16 * kMiB), nullptr, MakeHostBackedDeviceMemoryForTests(8 * kMiB));
  ASSERT_OK(s.Open());
  std::vector<Key> keys{K(5)};
  std::unique_ptr<Delivery> d;
  s.DropSelect(keys, [&](Result<std::unique_ptr<Delivery>> r) { d = std::move(r).value(); });
  EXPECT_EQ(d, nullptr);
  const auto v = Value(5000, 5);
  ASSERT_OK(Put(s, K(5), v));
  ASSERT_NE(d, nullptr);  // delivered at commit, from the host slot
  EXPECT_TRUE(std::equal(v.begin(), v.end(), d->entries()[0].bytes.begin()));
  d->Finish(true);
  EXPECT_EQ(s.counters().device_admissions.load(), 0u);
  EXPECT_EQ(s.Stats().staged_transfers, 0u);
}

TEST(StoreDeviceTier, FillingTheDeviceTierPastItsWatermarkDemotesToHostByteExact) {
  const uint64_t device_bytes = 4 * kMiB;
  Store s(Opts(), MakeHeapMemory(64 * kMiB), nullptr,
          MakeHostBackedDeviceMemoryForTests(device_bytes));
  ASSERT_OK(s.Open());
  constexpr uint32_t kCount = 16;  // 16 x 256 KiB fill the device tier to 100%
  for (uint32_t i = 0; i < kCount; ++i) ASSERT_OK(Put(s, K(i), Value(256 << 10, i)));
  ASSERT_TRUE(Eventually([&] {
    StoreStats st = s.Stats();
    return static_cast<double>(Row(st, Tier::kDevice)->used_bytes) <= 0.90 * device_bytes &&
           Row(st, Tier::kHost)->entries > 0;
  })) << "the device tier was not relieved";
  EXPECT_GT(s.counters().device_demotions.load(), 0u);
  EXPECT_EQ(EntriesIn(s, Tier::kDevice) + EntriesIn(s, Tier::kHost), kCount);
  EXPECT_EQ(TierOf(s, K(0)), Tier::kHost);  // least recently used goes first

  // What was demoted is served from host as it is (no staging) and is byte-exact.
  ListPage host = s.List({}, 0, static_cast<int>(Tier::kHost), {});
  ASSERT_FALSE(host.entries.empty());
  for (uint32_t i = 0; i < kCount; ++i) {
    if (TierOf(s, K(i)) != Tier::kHost) continue;
    EXPECT_EQ(TakeBytes(s, K(i), /*drop=*/false), Value(256 << 10, i)) << "key " << i;
  }
  EXPECT_EQ(s.Stats().staged_transfers, 0u);
  // And what stayed in the device tier is exact too.
  for (uint32_t i = 0; i < kCount; ++i) {
    EXPECT_EQ(TakeBytes(s, K(i), /*drop=*/true), Value(256 << 10, i)) << "key " << i;
  }
  EXPECT_EQ(s.Stats().staged_transfers, kCount - host.entries.size());
}

TEST(StoreDeviceTier, EntriesFlowDeviceToHostToSpillAndComeBackByteExact) {
  SpillDir dir;
  auto spill = dir.Open();
  ASSERT_NE(spill, nullptr);
  Store s(Opts(), MakeHeapMemory(4 * kMiB), std::move(spill),
          MakeHostBackedDeviceMemoryForTests(4 * kMiB));
  ASSERT_OK(s.Open());
  const size_t size = 256 << 10;
  // Fill the device tier and let it demote its oldest entries, K(0) first, to host.
  for (uint32_t i = 0; i < 16; ++i) ASSERT_OK(Put(s, K(i), Value(size, i)));
  ASSERT_TRUE(Eventually([&] { return TierOf(s, K(0)) == Tier::kHost; }));
  // Overflow host too: its least recently used entry, K(0), goes on to spill.
  constexpr uint32_t kCount = 40;  // 10 MiB against 4 MiB device + 4 MiB host
  for (uint32_t i = 16; i < kCount; ++i) ASSERT_OK(Put(s, K(i), Value(size, i)));
  ASSERT_TRUE(Eventually([&] { return TierOf(s, K(0)) == Tier::kSpill; }))
      << "K(0) is in tier " << static_cast<int>(TierOf(s, K(0)).value_or(Tier::kHost));
  StoreStats st = s.Stats();
  EXPECT_GT(Row(st, Tier::kDevice)->entries, 0u);
  EXPECT_GT(Row(st, Tier::kHost)->entries, 0u);
  EXPECT_GT(Row(st, Tier::kSpill)->entries, 0u);
  EXPECT_EQ(Row(st, Tier::kDevice)->entries + Row(st, Tier::kHost)->entries +
                Row(st, Tier::kSpill)->entries,
            kCount);
  EXPECT_GT(s.counters().device_demotions.load(), 0u);
  EXPECT_GT(s.counters().evictions.load(), 0u);

  for (uint32_t i = 0; i < kCount; ++i) {
    EXPECT_EQ(TakeBytes(s, K(i), /*drop=*/true), Value(size, i)) << "key " << i;
  }
  st = s.Stats();
  for (const auto& row : st.tiers) EXPECT_EQ(row.entries, 0u) << TierName(row.tier);
  ASSERT_OK(s.Close());
}

TEST(StoreDeviceTier, SelectOfAHostAndASpilledKeyDeliversBoth) {
  SpillDir dir;
  Store s(Opts(), MakeHeapMemory(1 * kMiB), dir.Open());
  ASSERT_OK(s.Open());
  for (uint32_t i = 0; i < 8; ++i) ASSERT_OK(Put(s, K(i), Value(256 << 10, i)));
  ASSERT_EQ(TierOf(s, K(0)), Tier::kSpill);  // 1 MiB of host holds 4: the oldest went
  ASSERT_EQ(TierOf(s, K(7)), Tier::kHost);
  auto d = Take(s, {K(7), K(0)}, /*drop=*/false);
  ASSERT_OK(d);
  ASSERT_EQ((*d)->entries().size(), 2u);  // not only the key that came back from spill
  EXPECT_EQ((*d)->entries()[0].key, K(7));
  EXPECT_TRUE(std::ranges::equal((*d)->entries()[0].bytes, Value(256 << 10, 7)));
  EXPECT_EQ((*d)->entries()[1].key, K(0));
  EXPECT_TRUE(std::ranges::equal((*d)->entries()[1].bytes, Value(256 << 10, 0)));
  (*d)->Finish(true);
}

TEST(StoreDeviceTier, ShutdownFlushWritesDeviceEntriesToSpill) {
  SpillDir dir;
  {
    Store s(Opts(), MakeHeapMemory(16 * kMiB), dir.Open(),
            MakeHostBackedDeviceMemoryForTests(8 * kMiB));
    ASSERT_OK(s.Open());
    for (uint32_t i = 1; i <= 3; ++i) ASSERT_OK(Put(s, K(i), Value(70000, i)));
    ASSERT_EQ(EntriesIn(s, Tier::kDevice), 3u);
    ASSERT_OK(s.Close());
  }
  Store again(Opts(), MakeHeapMemory(16 * kMiB), dir.Open());
  auto found = again.Open();
  ASSERT_OK(found);
  EXPECT_EQ(*found, 3u);
  for (uint32_t i = 1; i <= 3; ++i) {
    EXPECT_EQ(TakeBytes(again, K(i), /*drop=*/true), Value(70000, i)) << "key " << i;
  }
}

TEST(StoreDeviceTier, WithoutADeviceTierNothingChanges) {
  Store s(Opts(), MakeHeapMemory(16 * kMiB));
  ASSERT_OK(s.Open());
  for (uint32_t i = 1; i <= 3; ++i) ASSERT_OK(Put(s, K(i), Value(100000, i)));
  StoreStats st = s.Stats();
  EXPECT_EQ(Row(st, Tier::kDevice), nullptr);
  ASSERT_EQ(st.tiers.size(), 1u);
  EXPECT_EQ(st.tiers[0].tier, Tier::kHost);
  EXPECT_EQ(st.tiers[0].entries, 3u);
  EXPECT_TRUE(s.List({}, 0, static_cast<int>(Tier::kDevice), {}).entries.empty());
  EXPECT_EQ(TierOf(s, K(1)), Tier::kHost);
  EXPECT_EQ(TakeBytes(s, K(1), /*drop=*/false), Value(100000, 1));
  EXPECT_EQ(TakeBytes(s, K(2), /*drop=*/true), Value(100000, 2));
  EXPECT_EQ(s.Stats().staged_transfers, 0u);
  EXPECT_EQ(s.counters().device_admissions.load(), 0u);
  EXPECT_FALSE(s.has_device_tier());
  EXPECT_TRUE(s.DescribeDevice().empty());
}

}  // namespace
}  // namespace kvstore::server

// Namespaces: the same key in two namespaces is two entries; nothing crosses.
namespace kvstore::server {
namespace {

Status PutIn(Store& s, NamespaceId ns, const Key& k, const std::vector<std::byte>& v) {
  EntryMeta m;
  m.size = v.size();
  m.checksum = ValueChecksum(v);
  auto r = s.Reserve(k, m, {}, ns);
  if (!r.ok()) return r.status();
  if (r->exists) return Status::Ok();
  if (!v.empty()) std::memcpy(r->slot.data, v.data(), v.size());
  auto c = s.Commit(std::move(r).value());
  return c.ok() ? Status::Ok() : c.status();
}

Result<std::unique_ptr<Delivery>> SelectNow(Store& s, NamespaceId ns, std::vector<Key> keys) {
  std::optional<Result<std::unique_ptr<Delivery>>> got;
  s.Select(
      keys, [&](Result<std::unique_ptr<Delivery>> r) { got.emplace(std::move(r)); }, ns);
  if (!got) return Status::Internal("select did not resolve at once");
  return std::move(*got);
}

TEST(StoreNamespaces, SameKeyInTwoNamespacesIsTwoEntries) {
  Store s(Opts(), MakeHeapMemory(64 << 20));
  ASSERT_TRUE(PutIn(s, 1, K(1), Bytes(100, 1)).ok());
  ASSERT_TRUE(PutIn(s, 2, K(1), Bytes(200, 2)).ok());
  std::vector<Key> keys{K(1)};
  EXPECT_EQ(s.MatchPrefix(keys), 0u);  // the default namespace holds nothing
  EXPECT_EQ(s.MatchPrefix(keys, 1), 1u);
  EXPECT_EQ(s.MatchPrefix(keys, 2), 1u);
  EXPECT_EQ(s.MatchPrefix(keys, 3), 0u);

  auto d1 = SelectNow(s, 1, keys);
  ASSERT_TRUE(d1.ok()) << d1.status().ToString();
  EXPECT_EQ((*d1)->entries()[0].bytes.size(), 100u);
  (*d1)->Finish(true);
  auto d3 = SelectNow(s, 3, keys);
  EXPECT_EQ(d3.status().code(), StatusCode::kNotFound);

  // Remove and drop_select in namespace 2 leave namespace 1 alone.
  EXPECT_EQ(s.Remove(keys, 3), 0u);
  std::unique_ptr<Delivery> taken;
  s.DropSelect(
      keys, [&](Result<std::unique_ptr<Delivery>> r) { taken = std::move(r).value(); }, 2);
  ASSERT_NE(taken, nullptr);
  EXPECT_EQ(taken->entries()[0].bytes.size(), 200u);
  EXPECT_EQ(taken->entries()[0].bytes[0], std::byte{2});
  taken->Finish(true);
  EXPECT_EQ(s.MatchPrefix(keys, 2), 0u);
  EXPECT_EQ(s.MatchPrefix(keys, 1), 1u);
  EXPECT_EQ(s.Retain(keys, 2), 0u);
  EXPECT_EQ(s.Retain(keys, 1), 1u);
  EXPECT_EQ(s.Remove(keys, 1), 1u);
  EXPECT_EQ(s.Stats().tiers[0].used_bytes, 0u);
}

TEST(StoreNamespaces, AWaiterIsWokenOnlyByItsOwnNamespace) {
  Store s(Opts(), MakeHeapMemory(64 << 20));
  std::vector<Key> keys{K(7)};
  std::unique_ptr<Delivery> got;
  uint64_t id = s.DropSelect(
      keys, [&](Result<std::unique_ptr<Delivery>> r) { got = std::move(r).value(); }, 5);
  ASSERT_NE(id, 0u);
  ASSERT_TRUE(PutIn(s, 6, K(7), Bytes(10, 6)).ok());
  ASSERT_TRUE(Put(s, K(7), Bytes(10, 0)).ok());  // default namespace
  EXPECT_EQ(got, nullptr);
  EXPECT_EQ(s.Stats(5).waiters, 1u);
  ASSERT_TRUE(PutIn(s, 5, K(7), Bytes(10, 5)).ok());
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->entries()[0].bytes[0], std::byte{5});
  got->Finish(true);
  EXPECT_EQ(s.MatchPrefix(keys, 6), 1u);
  EXPECT_EQ(s.MatchPrefix(keys), 1u);
  EXPECT_EQ(s.Stats(5).waiters, 0u);
}

TEST(StoreNamespaces, ListShowsOneNamespaceOrAllToAnAdmin) {
  Store s(Opts(), MakeHeapMemory(64 << 20));
  for (uint32_t i = 0; i < 5; ++i) ASSERT_TRUE(PutIn(s, 1, K(i), Bytes(10, 1)).ok());
  for (uint32_t i = 0; i < 3; ++i) ASSERT_TRUE(PutIn(s, 2, K(i), Bytes(10, 2)).ok());
  EXPECT_EQ(s.List({}, 0, -1, {}).entries.size(), 0u);
  EXPECT_EQ(s.List({}, 0, -1, {}, 1).entries.size(), 5u);
  EXPECT_EQ(s.List({}, 0, -1, {}, 2).entries.size(), 3u);
  // Pages of 3 over every namespace: 8 entries, each (namespace, key) once, in order.
  std::vector<std::pair<NamespaceId, Key>> seen;
  std::vector<std::byte> cursor;
  for (int page = 0; page < 10; ++page) {
    std::vector<NamespaceId> ns;
    ListPage p = s.List(cursor, 3, -1, {}, kAllNamespaces, &ns);
    ASSERT_EQ(ns.size(), p.entries.size());
    for (size_t i = 0; i < ns.size(); ++i) seen.emplace_back(ns[i], p.entries[i].key);
    if (p.next_cursor.empty()) break;
    cursor = p.next_cursor;
  }
  ASSERT_EQ(seen.size(), 8u);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(std::count_if(seen.begin(), seen.end(), [](auto& p) { return p.first == 2; }), 3);
  // A one-namespace listing pages by key alone.
  ListPage first = s.List({}, 2, -1, {}, 1);
  ASSERT_EQ(first.entries.size(), 2u);
  ListPage rest = s.List(first.next_cursor, 10, -1, {}, 1);
  EXPECT_EQ(rest.entries.size(), 3u);
  EXPECT_TRUE(rest.next_cursor.empty());
}

TEST(StoreNamespaces, QuotasRefuseWithAMessageNamingNamespaceAndQuota) {
  Store s(Opts(), MakeHeapMemory(64 << 20));
  s.SetNamespaceQuota(3, NamespaceQuota{.host_bytes = 0, .entries = 2, .waiters = 1});
  ASSERT_TRUE(PutIn(s, 3, K(1), Bytes(10, 1)).ok());
  ASSERT_TRUE(PutIn(s, 3, K(2), Bytes(10, 1)).ok());
  Status third = PutIn(s, 3, K(3), Bytes(10, 1));
  EXPECT_EQ(third.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(third.message().find("namespace 3"), std::string::npos) << third.ToString();
  EXPECT_NE(third.message().find("2 entries"), std::string::npos) << third.ToString();
  EXPECT_TRUE(PutIn(s, 4, K(3), Bytes(10, 1)).ok());  // other namespaces are not limited
  EXPECT_TRUE(PutIn(s, 3, K(1), Bytes(10, 1)).ok());  // re-insert of a stored key: no new entry
  std::vector<Key> one{K(1)};
  EXPECT_EQ(s.Remove(one, 3), 1u);
  EXPECT_TRUE(PutIn(s, 3, K(3), Bytes(10, 1)).ok());  // room again

  // Host bytes: reservations in flight count.
  s.SetNamespaceQuota(8, NamespaceQuota{.host_bytes = 1000});
  EntryMeta m;
  m.size = 600;
  m.checksum = ValueChecksum(Bytes(600, 8));
  auto held = s.Reserve(K(1), m, {}, 8);
  ASSERT_TRUE(held.ok());
  auto second = s.Reserve(K(2), m, {}, 8);
  EXPECT_EQ(second.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(second.status().message().find("namespace 8"), std::string::npos);
  EXPECT_NE(second.status().message().find("host-memory quota of 1000"), std::string::npos)
      << second.status().ToString();
  s.Abort(std::move(held).value());
  EXPECT_TRUE(PutIn(s, 8, K(2), Bytes(600, 8)).ok());
  EXPECT_EQ(s.NamespaceUsageOf(8).host_bytes, 600u);
  EXPECT_EQ(s.NamespaceUsageOf(8).reserved_bytes, 0u);
  EXPECT_GE(s.Stats(8).refused_inserts, 1u);

  // Waiters.
  std::vector<Key> absent{K(99)};
  uint64_t w = s.DropSelect(
      absent, [](Result<std::unique_ptr<Delivery>>) {}, 3);
  EXPECT_NE(w, 0u);
  std::optional<Status> refused;
  EXPECT_EQ(s.DropSelect(
                absent, [&](Result<std::unique_ptr<Delivery>> r) { refused = r.status(); }, 3),
            0u);
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->code(), StatusCode::kResourceExhausted);
  EXPECT_NE(refused->message().find("namespace 3"), std::string::npos) << refused->ToString();
  EXPECT_TRUE(s.CancelWaiter(w));
}

TEST(StoreNamespaces, StatsPerNamespace) {
  Store s(Opts(), MakeHeapMemory(64 << 20));
  ASSERT_TRUE(PutIn(s, 1, K(1), Bytes(100, 1)).ok());
  ASSERT_TRUE(PutIn(s, 1, K(2), Bytes(5000, 1)).ok());
  ASSERT_TRUE(PutIn(s, 2, K(1), Bytes(300, 2)).ok());
  StoreStats one = s.Stats(1);
  EXPECT_EQ(one.tiers[0].entries, 2u);
  EXPECT_EQ(one.tiers[0].bytes, 5100u);
  EXPECT_GE(one.tiers[0].used_bytes, 5100u);
  EXPECT_EQ(one.inserts, 2u);
  EXPECT_EQ(s.Stats(2).tiers[0].bytes, 300u);
  EXPECT_EQ(s.Stats().tiers[0].entries, 3u);
  EXPECT_EQ(s.Stats(kAllNamespaces).tiers[0].entries, 3u);
  std::vector<Key> miss{K(9)};
  (void)SelectNow(s, 2, miss);
  EXPECT_EQ(s.Stats(2).misses, 1u);
  EXPECT_EQ(s.Stats(1).misses, 0u);
  auto all = s.Namespaces();
  ASSERT_GE(all.size(), 2u);
  EXPECT_EQ(all[0].ns, 1u);
  EXPECT_EQ(all[0].entries, 2u);
}

TEST(StoreNamespaces, SpillKeepsNamespacesApartAndARestartFindsThem) {
  SpillDir dir;
  {
    Store s(Opts(), MakeHeapMemory(1 * kMiB), dir.Open());
    ASSERT_TRUE(s.Open().ok());
    // 8 x 256 KiB per namespace through 1 MiB of host: most go to spill.
    for (uint32_t i = 0; i < 8; ++i) {
      ASSERT_TRUE(PutIn(s, 1, K(i), Value(256 << 10, i)).ok());
      ASSERT_TRUE(PutIn(s, 2, K(i), Value(256 << 10, 100 + i)).ok());
    }
    EXPECT_GT(s.NamespaceUsageOf(1).spill_bytes, 0u);
    EXPECT_GT(s.NamespaceUsageOf(2).spill_bytes, 0u);
    for (uint32_t i = 0; i < 4; ++i) {
      auto d = Take(s, {K(i)}, /*drop=*/false);
      (void)d;
    }
    ASSERT_TRUE(s.Close().ok());
  }
  Store again(Opts(), MakeHeapMemory(4 * kMiB), dir.Open());
  auto found = again.Open();
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(*found, 16u);
  std::vector<Key> keys;
  for (uint32_t i = 0; i < 8; ++i) keys.push_back(K(i));
  EXPECT_EQ(again.MatchPrefix(keys, 1), 8u);
  EXPECT_EQ(again.MatchPrefix(keys, 2), 8u);
  EXPECT_EQ(again.MatchPrefix(keys), 0u);
  for (uint32_t i = 0; i < 8; ++i) {
    struct Got {
      std::mutex mu;
      std::condition_variable cv;
      std::vector<std::byte> bytes;
      bool done = false;
    };
    for (NamespaceId ns : {1u, 2u}) {
      auto got = std::make_shared<Got>();
      std::vector<Key> one{K(i)};
      again.DropSelect(
          one,
          [got](Result<std::unique_ptr<Delivery>> r) {
            std::lock_guard lock(got->mu);
            if (r.ok()) {
              auto b = (*r)->entries()[0].bytes;
              got->bytes.assign(b.begin(), b.end());
              (*r)->Finish(true);
            }
            got->done = true;
            got->cv.notify_all();
          },
          ns);
      std::unique_lock lock(got->mu);
      ASSERT_TRUE(got->cv.wait_for(lock, std::chrono::seconds(10), [&] { return got->done; }));
      EXPECT_EQ(got->bytes, Value(256 << 10, ns == 1 ? i : 100 + i)) << "ns " << ns << " key " << i;
    }
  }
}

}  // namespace
}  // namespace kvstore::server

// TTL: expiry costs what expires, never what is stored.
namespace kvstore::server {
namespace {

Status PutTtl(Store& s, const Key& k, size_t n, std::chrono::milliseconds ttl) {
  std::vector<std::byte> v(n, std::byte{1});
  EntryMeta m;
  m.size = v.size();
  m.checksum = ValueChecksum(v);
  auto r = s.Reserve(k, m, ttl);
  if (!r.ok()) return r.status();
  std::memcpy(r->slot.data, v.data(), v.size());
  return s.Commit(std::move(r).value()).status();
}

Key Big(uint32_t i) {
  Key k;
  std::memcpy(k.bytes.data() + 28, &i, 4);
  k.bytes[0] = std::byte{0xee};
  return k;
}

TEST(StoreTtl, ExpiryLooksOnlyAtWhatExpiresAmongAHugePopulation) {
  Store s(Opts(256 << 20), MakeArenaMemory(256 << 20, false).value());
  constexpr uint32_t kLong = 200000, kShort = 1000;
  for (uint32_t i = 0; i < kLong; ++i) {
    ASSERT_TRUE(PutTtl(s, Big(i), 64, std::chrono::hours(1)).ok());
  }
  for (uint32_t i = 0; i < kShort; ++i) {
    ASSERT_TRUE(PutTtl(s, K(i), 64, std::chrono::milliseconds(30)).ok());
  }
  // Nothing has expired yet whatever the pass finds: long TTLs are not looked at.
  size_t expired = 0;
  ASSERT_TRUE(Eventually([&] {
    expired += s.ExpireTtl();
    return expired == kShort;
  })) << expired;
  EXPECT_EQ(s.counters().ttl_examined.load(), kShort);  // a scan would look at 201,000
  EXPECT_EQ(s.counters().ttl_expired.load(), kShort);
  EXPECT_EQ(s.Stats().tiers[0].entries, kLong);
  std::vector<Key> shorts, longs;
  for (uint32_t i = 0; i < kShort; ++i) shorts.push_back(K(i));
  for (uint32_t i = 0; i < kLong; ++i) longs.push_back(Big(i));
  EXPECT_EQ(s.MatchPrefix(shorts), 0u);
  EXPECT_EQ(s.MatchPrefix(longs), kLong);
  EXPECT_EQ(s.ExpireTtl(), 0u);
}

TEST(StoreTtl, NoTtlCostsNothingAndAnEntryBeingReadIsFreedAfterTheRead) {
  Store s(Opts(), MakeHeapMemory(64 << 20));
  for (uint32_t i = 0; i < 1000; ++i) ASSERT_TRUE(PutTtl(s, K(i), 10, {}).ok());  // --ttl 0
  EXPECT_EQ(s.ExpireTtl(), 0u);
  EXPECT_EQ(s.counters().ttl_examined.load(), 0u);

  ASSERT_TRUE(PutTtl(s, K(5000), 5000, std::chrono::milliseconds(1)).ok());
  std::vector<Key> keys{K(5000)};
  std::unique_ptr<Delivery> reading;
  s.Select(keys, [&](Result<std::unique_ptr<Delivery>> r) { reading = std::move(r).value(); });
  ASSERT_NE(reading, nullptr);
  ASSERT_TRUE(Eventually([&] { return s.ExpireTtl() == 1; }));
  EXPECT_EQ(s.MatchPrefix(keys), 0u);                          // gone from the index at once
  EXPECT_EQ(reading->entries()[0].bytes[4999], std::byte{1});  // bytes still valid
  const uint64_t before = s.Stats().tiers[0].used_bytes;
  reading->Finish(true);
  EXPECT_LT(s.Stats().tiers[0].used_bytes, before);  // freed with the last reader
}

TEST(StoreTtl, AFailedDeliveryPutsTheEntryBackWithItsDeadline) {
  Store s(Opts(), MakeHeapMemory(64 << 20));
  ASSERT_TRUE(PutTtl(s, K(1), 10, std::chrono::milliseconds(1)).ok());
  std::vector<Key> keys{K(1)};
  std::unique_ptr<Delivery> d;
  s.DropSelect(keys, [&](Result<std::unique_ptr<Delivery>> r) { d = std::move(r).value(); });
  ASSERT_NE(d, nullptr);
  std::this_thread::sleep_for(std::chrono::milliseconds(40));
  EXPECT_EQ(s.ExpireTtl(), 0u);  // claimed: not the expiry's to drop
  d->Finish(false);              // back in the index, its deadline long past
  ASSERT_TRUE(Eventually([&] { return s.ExpireTtl() == 1; }));
  EXPECT_EQ(s.MatchPrefix(keys), 0u);
  EXPECT_EQ(s.Stats().tiers[0].used_bytes, 0u);
}

}  // namespace
}  // namespace kvstore::server

// The index hashes the whole key with a per-process secret: keys a client
// makes share a long prefix still spread (the old index hashed 8 bytes).
namespace kvstore::server {
namespace {

TEST(StoreIndex, KeysSharingTheirFirst24BytesDoNotCollide) {
  Store s(Opts(256 << 20), MakeArenaMemory(256 << 20, false).value());
  constexpr uint32_t kCount = 40000;
  std::vector<Key> keys;
  for (uint32_t i = 0; i < kCount; ++i) {
    Key k;
    std::memset(k.bytes.data(), 0xab, 24);  // all equal but the last 8 bytes
    const uint64_t tail = i;
    std::memcpy(k.bytes.data() + 24, &tail, 8);
    keys.push_back(k);
    ASSERT_TRUE(Put(s, k, Bytes(64, 1)).ok());
  }
  EXPECT_EQ(s.MatchPrefix(keys), kCount);
  // One chain of 40,000 made every insert a linear scan; spread keys give runs
  // of tens of slots in a table at most 3/4 full.
  EXPECT_LE(s.IndexLongestChain(), 512u);
  // Also within one namespace other than the default, and the same keys in two.
  for (uint32_t i = 0; i < 1000; ++i) ASSERT_TRUE(PutIn(s, 9, keys[i], Bytes(64, 9)).ok());
  EXPECT_LE(s.IndexLongestChain(), 512u);
}

}  // namespace
}  // namespace kvstore::server

// Spill read-back on an idle store: a value of a size class the full host
// arena has no slab for is promoted by demoting until a slot of its class is
// free, never refused ("full of entries being read") while nothing is read.
namespace kvstore::server {
namespace {

TEST(StoreSpillReadBack, APromotionNeedingAWholeFreeRunIsNotRefused) {
  SpillDir dir;
  Store s(Opts(4 * kMiB), MakeArenaMemory(4 * kMiB, false).value(), dir.Open());
  ASSERT_TRUE(s.Open().ok());
  // One 300 KiB value (class 320 KiB), then 256 KiB values (class 256 KiB, 8 a
  // 2 MiB slab): the 300 KiB one goes to spill and 256 KiB slabs fill the arena.
  const auto odd = Value(300 << 10, 999);
  ASSERT_TRUE(Put(s, K(999), odd).ok());
  for (uint32_t i = 0; i < 24; ++i) ASSERT_TRUE(Put(s, K(i), Value(256 << 10, i)).ok());
  ASSERT_TRUE(Eventually([&] { return TierOf(s, K(999)) == Tier::kSpill; }));
  // Read it back, and the same again after it went out once more: every read succeeds.
  for (int pass = 0; pass < 3; ++pass) {
    EXPECT_EQ(TakeBytes(s, K(999), /*drop=*/false), odd) << "pass " << pass;
    for (uint32_t i = 0; i < 24; ++i) {
      EXPECT_EQ(TakeBytes(s, K(i), /*drop=*/false), Value(256 << 10, i)) << "key " << i;
    }
  }
  ASSERT_TRUE(s.Close().ok());
}

}  // namespace
}  // namespace kvstore::server

// Batched insert: many values reserved and committed under one hold each.
namespace kvstore::server {
namespace {

TEST(StoreBatch, ReserveManyAndCommitManyStoreEveryValueAndWakeWaiters) {
  Store s(Opts(), MakeHeapMemory(64 << 20));
  ASSERT_TRUE(PutIn(s, 4, K(2), Bytes(10, 9)).ok());  // already stored: reported as exists
  std::vector<Key> keys;
  std::vector<EntryMeta> metas;
  std::vector<std::vector<std::byte>> values;
  for (uint32_t i = 0; i < 32; ++i) {
    keys.push_back(K(i));
    values.push_back(Value(100 + i * 37, i));
    EntryMeta m;
    m.size = values.back().size();
    m.checksum = ValueChecksum(values.back());
    m.layout = "L" + std::to_string(i % 2);
    metas.push_back(m);
  }
  metas[5].checksum ^= 1;  // one corrupted in transit
  std::unique_ptr<Delivery> waited;
  std::vector<Key> wait_keys{K(7), K(8)};
  s.DropSelect(
      wait_keys, [&](Result<std::unique_ptr<Delivery>> r) { waited = std::move(r).value(); }, 4);

  auto reserved = s.ReserveMany(keys, metas, {}, 4);
  ASSERT_EQ(reserved.size(), keys.size());
  std::vector<Reservation> rs;
  for (size_t i = 0; i < reserved.size(); ++i) {
    ASSERT_TRUE(reserved[i].ok()) << i << ": " << reserved[i].status().ToString();
    EXPECT_EQ(reserved[i]->exists, i == 2) << i;
    if (!reserved[i]->exists) {
      std::memcpy(reserved[i]->slot.data, values[i].data(), values[i].size());
    }
    rs.push_back(std::move(reserved[i]).value());
  }
  EXPECT_EQ(s.MatchPrefix(keys, 4), 0u);  // reserved: invisible until committed
  auto committed = s.CommitMany(rs);
  ASSERT_EQ(committed.size(), keys.size());
  for (size_t i = 0; i < committed.size(); ++i) {
    if (i == 5) {
      EXPECT_EQ(committed[i].status().code(), StatusCode::kDataLoss);
    } else {
      ASSERT_TRUE(committed[i].ok()) << i << ": " << committed[i].status().ToString();
      EXPECT_EQ(*committed[i], i != 2) << i;
    }
  }
  EXPECT_EQ(s.MatchPrefix(keys, 4), 5u);  // K(5) was refused
  ASSERT_NE(waited, nullptr);             // both keys arrived in the batch
  EXPECT_TRUE(std::ranges::equal(waited->entries()[1].bytes, values[8]));
  waited->Finish(true);
  auto d = SelectNow(s, 4, {K(31)});
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(std::ranges::equal((*d)->entries()[0].bytes, values[31]));
  EXPECT_EQ((*d)->entries()[0].meta.layout, "L1");
  (*d)->Finish(true);
  EXPECT_EQ(s.NamespaceUsageOf(4).reserved_entries, 0u);
  // K(2) before and 30 of the batch (K(2) existed, K(5) refused), less K(7), K(8) taken.
  EXPECT_EQ(s.NamespaceUsageOf(4).entries, 29u);
}

}  // namespace
}  // namespace kvstore::server
