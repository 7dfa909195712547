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
#include "store_test_util.h"

namespace kvstore::server {
namespace {

using namespace store_test;

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

// Durable mode: the old copy of a key, claimed by a drop_select, is delivered
// after a re-insert of the key wrote its disk copy and before that insert's
// entry is in the index. Freeing the old copy must not delete the new disk copy:
// after a stop without flush (what survives kill -9), the new value is there.
TEST(StoreDurable, AnOldCopyDeliveredDuringAWriteThroughKeepsTheNewDiskCopy) {
  SpillDir dir;
  StoreOptions o = Opts(4 * kMiB);
  o.durability = Durability::kSync;
  o.flush_on_shutdown = false;
  {
    Store s(o, MakeHeapMemory(4 * kMiB), dir.Open());
    ASSERT_OK(s.Open());
    ASSERT_OK(Put(s, K(1), Value(4096, 1)));
    auto old = Take(s, {K(1)}, /*drop=*/true);
    ASSERT_OK(old);
    bool delivered = false;
    s.SetCommitHookForTests([&] {
      (*old)->Finish(true);
      delivered = true;
    });
    ASSERT_OK(Put(s, K(1), Value(4096, 2)));
    s.SetCommitHookForTests(nullptr);
    ASSERT_TRUE(delivered);
    ASSERT_OK(s.Close());
  }
  Store again(o, MakeHeapMemory(4 * kMiB), dir.Open());
  auto found = again.Open();
  ASSERT_OK(found);
  EXPECT_EQ(*found, 1u);
  EXPECT_EQ(TakeBytes(again, K(1), /*drop=*/true), Value(4096, 2));
  ASSERT_OK(again.Close());
}

}  // namespace
}  // namespace kvstore::server

namespace kvstore::server {
namespace {

using namespace store_test;

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

using namespace store_test;

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
  // Served from the device tier means staged into host first. The tier worker
  // may still be demoting down to its low watermark after the listing above,
  // so at most the entries the device held then were staged, and some were.
  EXPECT_GT(s.Stats().staged_transfers, 0u);
  EXPECT_LE(s.Stats().staged_transfers, kCount - host.entries.size());
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
