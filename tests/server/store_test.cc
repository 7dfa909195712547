// The Store on its own: commit visibility, claiming, redelivery, pins.
#include "kvstore/server/store.h"

#include <gtest/gtest.h>

#include <cstring>

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
  std::memcpy(r->slot.data, v.data(), v.size());
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
  ASSERT_TRUE(r.ok());
  std::vector<Key> keys{K(1)};
  EXPECT_EQ(s.MatchPrefix(keys), 0u);
  std::memcpy(r->slot.data, v.data(), v.size());
  ASSERT_TRUE(s.Commit(std::move(r).value()).ok());
  EXPECT_EQ(s.MatchPrefix(keys), 1u);
}

TEST(Store, FailedDeliveryPutsEntriesBackAndWakesTheNextWaiter) {
  Store s(Opts(), MakeHeapMemory(64 << 20));
  ASSERT_TRUE(Put(s, K(1), Bytes(100, 1)).ok());
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
  ASSERT_TRUE(Put(s, K(1), Bytes(5000, 7)).ok());
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
  ASSERT_TRUE(Put(s, K(3), Bytes(10, 3)).ok());
  EXPECT_FALSE(ran);
  EXPECT_EQ(s.MatchPrefix(keys), 1u);
}

TEST(Store, ChecksumMismatchIsNotStored) {
  Store s(Opts(), MakeHeapMemory(64 << 20));
  EntryMeta m;
  m.size = 10;
  m.checksum = 12345;
  auto r = s.Reserve(K(4), m, {});
  ASSERT_TRUE(r.ok());
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
  ASSERT_TRUE(Put(s, K(1), Bytes(100, 1)).ok());
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
