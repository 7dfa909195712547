// The Store's compact entries: what the index costs per entry, expiry records
// that outlive their entry, and the limit of the layout/producer string table.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "kvstore/server/store.h"
#include "status_matchers.h"
#include "store_test_util.h"

namespace kvstore::server {
namespace {

using namespace store_test;

// The layout of server/src/store/entry.h and entry_pool.h.
constexpr double kEntryBytes = 80;
constexpr double kChunkEntries = 1 << 14;

Status PutWith(Store& s, const Key& k, std::chrono::milliseconds ttl, std::string layout = {}) {
  std::vector<std::byte> v(64, std::byte{7});
  EntryMeta m;
  m.size = v.size();
  m.checksum = ValueChecksum(v);
  m.layout = std::move(layout);
  auto r = s.Reserve(k, m, ttl);
  if (!r.ok()) return r.status();
  std::memcpy(r->slot.data, v.data(), v.size());
  return s.Commit(std::move(r).value()).status();
}

TEST(StoreEntries, IndexBytesPerEntryStayUnderTheLayoutBound) {
  Store s(Opts(128 * kMiB), MakeArenaMemory(128 * kMiB, false).value());
  constexpr uint32_t kCount = 300000;
  for (uint32_t i = 0; i < kCount; ++i) {
    ASSERT_OK(PutWith(s, K(i), i % 2 ? std::chrono::hours(1) : std::chrono::milliseconds(0)));
  }
  const Store::IndexMemory m = s.IndexMemoryStats();
  EXPECT_EQ(m.entries, kCount);
  // The figures are what the structures hold, not estimates from the count.
  EXPECT_GE(m.entry_bytes, kCount * kEntryBytes);
  EXPECT_GE(m.table_bytes, kCount * 4 * 4 / 3);  // ids at most 3/4 full
  EXPECT_GE(m.ttl_records, kCount / 2);
  // The bound the layout gives: an 80-byte entry, the pool's last chunk
  // partly used, an id table between 3/8 and 3/4 full (both tables while it
  // grows: <= 16 B), and a 4-byte record (x2 for a vector's growth) for every
  // entry with a TTL, a few bytes for the buckets themselves.
  const double bound = kEntryBytes + kEntryBytes * kChunkEntries / kCount + 16 + 8.0 / 2 + 1;
  EXPECT_LE(m.bytes_per_entry(), bound)
      << "entries " << m.entry_bytes << " table " << m.table_bytes << " ttl " << m.ttl_bytes;
  EXPECT_LE(m.bytes_per_entry(), 120.0);  // a heap-allocated entry alone took ~192 B
}

// An entry removed before its TTL leaves a record in its expiry bucket; the
// pool then hands its storage to a new entry. That record must not expire the
// new entry (only an entry still indexed with that very bucket is expired).
TEST(StoreEntries, AReusedEntryIsNotExpiredByAStaleBucketRecord) {
  Store s(Opts(), MakeArenaMemory(64 * kMiB, false).value());
  constexpr uint32_t kShort = 200;
  for (uint32_t i = 0; i < kShort; ++i) ASSERT_OK(PutWith(s, K(i), std::chrono::milliseconds(40)));
  // Every other one goes, so each bucket keeps live entries and its stale records.
  std::vector<Key> gone;
  for (uint32_t i = 1; i < kShort; i += 2) gone.push_back(K(i));
  ASSERT_EQ(s.Remove(gone), kShort / 2);
  // New entries take the freed entries' storage; their own TTL is an hour.
  constexpr uint32_t kLong = 50;
  for (uint32_t i = 0; i < kLong; ++i)
    ASSERT_OK(PutWith(s, Big(i, std::byte{0xab}), std::chrono::hours(1)));
  size_t expired = 0;
  ASSERT_TRUE(Eventually([&] {
    expired += s.ExpireTtl();
    return expired >= kShort / 2;
  })) << expired;
  EXPECT_EQ(expired, kShort / 2);
  std::vector<Key> longs;
  for (uint32_t i = 0; i < kLong; ++i) longs.push_back(Big(i, std::byte{0xab}));
  EXPECT_EQ(s.MatchPrefix(longs), kLong);
  EXPECT_EQ(s.Stats().tiers[0].entries, kLong);
  EXPECT_EQ(s.ExpireTtl(), 0u);
}

// Entries taken long before their TTL leave stale records; a bucket compacts
// them as they go, so the records stay in proportion to the entries with a TTL.
TEST(StoreEntries, StaleExpiryRecordsDoNotPileUp) {
  Store s(Opts(), MakeArenaMemory(64 * kMiB, false).value());
  constexpr uint32_t kRounds = 100000;
  uint32_t kept = 0;
  for (uint32_t i = 0; i < kRounds; ++i) {
    ASSERT_OK(PutWith(s, K(i), std::chrono::hours(1)));
    if (i % 100 == 0) {
      ++kept;
      continue;
    }
    std::vector<Key> one{K(i)};
    ASSERT_EQ(s.Remove(one), 1u);
  }
  const Store::IndexMemory m = s.IndexMemoryStats();
  EXPECT_EQ(m.entries, kept);
  // <= 2 x live + 16 per bucket; buckets are 16 ms and the loop takes a few seconds at most.
  EXPECT_LE(m.ttl_records, 3 * kept + 16 * 1000) << m.ttl_records;
  EXPECT_LT(m.ttl_records, kRounds / 4);
}

// Layout and producer strings are 16-bit ids: the 65536th distinct string in
// use is refused with an error that says what to do, and nothing is stored.
TEST(StoreEntries, TheStringTableRefusesPast65535DistinctStrings) {
  Store s(Opts(64 * kMiB), MakeArenaMemory(64 * kMiB, false).value());
  constexpr uint32_t kMax = 65535;
  for (uint32_t i = 0; i < kMax; ++i) {
    ASSERT_OK(PutWith(s, K(i), {}, "layout-" + std::to_string(i)));
  }
  EXPECT_EQ(s.IndexMemoryStats().string_count, kMax);
  const uint64_t used = s.Stats().tiers[0].used_bytes;
  Status refused = PutWith(s, K(kMax), {}, "one-too-many");
  EXPECT_EQ(refused.code(), StatusCode::kResourceExhausted) << refused.ToString();
  EXPECT_NE(refused.ToString().find("layout and producer strings"), std::string::npos)
      << refused.ToString();
  std::vector<Key> missing{K(kMax)};
  EXPECT_EQ(s.MatchPrefix(missing), 0u);
  EXPECT_EQ(s.Stats().tiers[0].used_bytes, used);  // its slot was freed
  // A string already in use still goes, and a freed id serves a new string.
  EXPECT_OK(PutWith(s, K(kMax + 1), {}, "layout-7"));
  std::vector<Key> one{K(3)};
  ASSERT_EQ(s.Remove(one), 1u);
  EXPECT_OK(PutWith(s, K(kMax), {}, "one-too-many"));
  EXPECT_EQ(s.MatchPrefix(missing), 1u);
}

// An entry keeps a value's size in 40 bits: a larger one is refused by
// name even when --max-value would let it in.
TEST(StoreEntries, AValuePastWhatAnEntryHoldsIsRefused) {
  StoreOptions o = Opts();
  o.max_value_bytes = UINT64_MAX;
  Store s(o, MakeHeapMemory(64 * kMiB));
  EntryMeta m;
  m.size = uint64_t{1} << 40;
  auto r = s.Reserve(K(1), m, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().ToString().find("the largest value an entry holds"), std::string::npos)
      << r.status().ToString();
}

}  // namespace
}  // namespace kvstore::server
