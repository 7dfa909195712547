#include "kvstore/tiers/rocksdb_spill.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include <xxhash.h>
#include "spill_test_util.h"
#include "status_matchers.h"

namespace kvstore::tiers {
namespace {

using namespace test;  // NOLINT: the helpers of spill_test_util.h

class RocksDbSpillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::MakeSpillDir("kvstore-spill-test");
    opts_.dir = dir_;
    opts_.capacity_bytes = 256 * MiB;
    opts_.segment_bytes = 16 * MiB;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<RocksDbSpill> Open() {
    auto s = RocksDbSpill::Open(opts_);
    EXPECT_OK(s);
    return s.ok() ? std::move(*s) : nullptr;
  }

  void PutValue(RocksDbSpill& s, uint32_t i, const std::vector<std::byte>& v) {
    Status st = s.Put(MakeKey(i), MetaFor(v), v);
    ASSERT_OK(st);
  }

  void ExpectValue(RocksDbSpill& s, uint32_t i, const std::vector<std::byte>& v) {
    std::vector<std::byte> out(v.size());
    EntryMeta m;
    Status st = s.Get(MakeKey(i), out, &m);
    ASSERT_OK(st);
    EXPECT_EQ(m.size, v.size());
    EXPECT_EQ(m.tier, Tier::kSpill);
    EXPECT_EQ(m.layout, "test/f16");
    EXPECT_TRUE(out == v) << "value " << i << " differs";
  }

  std::string dir_;
  SpillOptions opts_;
};

TEST_F(RocksDbSpillTest, RoundTripOneAndSixteenMiB) {
  auto s = Open();
  ASSERT_TRUE(s);
  const auto a = MakeValue(1 * MiB, 1), b = MakeValue(16 * MiB, 2), c = MakeValue(5000, 3);
  PutValue(*s, 1, a);
  PutValue(*s, 2, b);
  PutValue(*s, 3, c);
  ExpectValue(*s, 1, a);
  ExpectValue(*s, 2, b);
  ExpectValue(*s, 3, c);

  auto meta = s->GetMeta(MakeKey(2));
  ASSERT_OK(meta);
  EXPECT_EQ(meta->size, 16 * MiB);
  EXPECT_EQ(meta->checksum, XXH3_64bits(b.data(), b.size()));

  auto st = s->Stats();
  EXPECT_EQ(st.entries, 3u);
  EXPECT_EQ(st.bytes, 17 * MiB + 5000);
  EXPECT_EQ(st.write_bytes, 17 * MiB + 5000);

  ASSERT_OK(s->Delete(MakeKey(1)));
  EXPECT_EQ(s->GetMeta(MakeKey(1)).status().code(), StatusCode::kNotFound);
  std::vector<std::byte> out(1 * MiB);
  EXPECT_EQ(s->Get(MakeKey(1), out, nullptr).code(), StatusCode::kNotFound);
  EXPECT_EQ(s->Delete(MakeKey(1)).code(), StatusCode::kNotFound);
  EXPECT_EQ(s->Stats().entries, 2u);
}

TEST_F(RocksDbSpillTest, UnalignedBuffersAndSmallDestination) {
  auto s = Open();
  ASSERT_TRUE(s);
  const auto v = MakeValue(3 * MiB + 123, 4);
  std::vector<std::byte> shifted(v.size() + 1);
  std::copy(v.begin(), v.end(), shifted.begin() + 1);
  ASSERT_OK(s->Put(MakeKey(9), MetaFor(v), std::span(shifted).subspan(1)));
  std::vector<std::byte> out(v.size() + 7);
  ASSERT_OK(s->Get(MakeKey(9), std::span(out).subspan(7), nullptr));
  EXPECT_TRUE(std::equal(v.begin(), v.end(), out.begin() + 7));
  std::vector<std::byte> small(v.size() - 1);
  EXPECT_EQ(s->Get(MakeKey(9), small, nullptr).code(), StatusCode::kInvalidArgument);
  EntryMeta wrong = MetaFor(v);
  wrong.size += 1;
  EXPECT_EQ(s->Put(MakeKey(10), wrong, v).code(), StatusCode::kInvalidArgument);
}

TEST_F(RocksDbSpillTest, ReopenFindsEntriesAndForEachListsThem) {
  std::vector<std::vector<std::byte>> values;
  {
    auto s = Open();
    ASSERT_TRUE(s);
    for (uint32_t i = 0; i < 20; ++i) {
      values.push_back(MakeValue((i % 3 + 1) * 700 * KiB, i));
      PutValue(*s, i, values.back());
    }
    ASSERT_OK(s->Delete(MakeKey(5)));
  }
  auto s = Open();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->Stats().entries, 19u);
  std::map<Key, EntryMeta> seen;
  ASSERT_TRUE(s->ForEach([&](const SpillKey& sk, const EntryMeta& m) {
                 const Key& k = sk.key;
                 seen[k] = m;
                 return true;
               }).ok());
  EXPECT_EQ(seen.size(), 19u);
  EXPECT_EQ(seen.count(MakeKey(5)), 0u);
  for (uint32_t i = 0; i < 20; ++i) {
    if (i == 5) continue;
    ASSERT_EQ(seen.count(MakeKey(i)), 1u);
    EXPECT_EQ(seen[MakeKey(i)].size, values[i].size());
    ExpectValue(*s, i, values[i]);
  }
  int calls = 0;
  ASSERT_OK(s->ForEach([&](const SpillKey&, const EntryMeta&) { return ++calls < 3; }));
  EXPECT_EQ(calls, 3);
}

TEST_F(RocksDbSpillTest, SurvivesProcessDeathWithoutClose) {
  const auto v = MakeValue(2 * MiB + 10, 7);
  // A child process puts and dies by SIGKILL: no destructor, no Flush.
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto s = RocksDbSpill::Open(opts_);
    if (!s.ok()) _exit(2);
    if (!(*s)->Put(MakeKey(77), MetaFor(v), v).ok()) _exit(3);
    kill(getpid(), SIGKILL);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  auto s = Open();
  ASSERT_TRUE(s);
  ExpectValue(*s, 77, v);
}

TEST_F(RocksDbSpillTest, RefusesBeyondCapacity) {
  opts_.capacity_bytes = 8 * MiB;
  auto s = Open();
  ASSERT_TRUE(s);
  const auto v = MakeValue(3 * MiB, 8);
  PutValue(*s, 1, v);
  PutValue(*s, 2, v);
  Status st = s->Put(MakeKey(3), MetaFor(v), v);
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted) << st.ToString();
  EXPECT_EQ(s->Stats().refused_puts, 1u);
  EXPECT_EQ(s->Stats().entries, 2u);
  PutValue(*s, 2, v);  // replacing an entry needs no extra room
  ASSERT_OK(s->Delete(MakeKey(1)));
  PutValue(*s, 3, v);
  ExpectValue(*s, 3, v);
}

TEST_F(RocksDbSpillTest, CorruptValueIsDetectedRemovedAndNeverServed) {
  const auto v = MakeValue(1 * MiB, 11);
  {
    auto s = Open();
    ASSERT_TRUE(s);
    PutValue(*s, 1, v);
  }
  // Flip one byte in the middle of the value on disk.
  int corrupted = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_ + "/values")) {
    const int fd = open(e.path().c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    char b;
    ASSERT_EQ(pread(fd, &b, 1, 512 * KiB), 1);
    b ^= 0x40;
    ASSERT_EQ(pwrite(fd, &b, 1, 512 * KiB), 1);
    fsync(fd);
    close(fd);
    ++corrupted;
  }
  ASSERT_EQ(corrupted, 1);
  auto s = Open();
  ASSERT_TRUE(s);
  std::vector<std::byte> out(v.size());
  EXPECT_EQ(s->Get(MakeKey(1), out, nullptr).code(), StatusCode::kDataLoss);
  EXPECT_EQ(s->Stats().checksum_failures, 1u);
  EXPECT_EQ(s->GetMeta(MakeKey(1)).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(s->Stats().entries, 0u);
}

TEST_F(RocksDbSpillTest, TruncatedSegmentDropsItsRecordsAtOpen) {
  const auto v = MakeValue(1 * MiB, 12);
  {
    auto s = Open();
    ASSERT_TRUE(s);
    PutValue(*s, 1, v);
    PutValue(*s, 2, v);
  }
  for (const auto& e : std::filesystem::directory_iterator(dir_ + "/values")) {
    std::filesystem::resize_file(e.path(), 1 * MiB);  // keeps the first value only
  }
  auto s = Open();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->Stats().entries, 1u);
  ExpectValue(*s, 1, v);
  EXPECT_EQ(s->GetMeta(MakeKey(2)).status().code(), StatusCode::kNotFound);
}

TEST_F(RocksDbSpillTest, DeletesReclaimDiskAndCompactionKeepsValues) {
  opts_.capacity_bytes = 64 * MiB;
  opts_.segment_bytes = 8 * MiB;
  opts_.max_garbage_bytes = 16 * MiB;
  auto s = Open();
  ASSERT_TRUE(s);
  std::map<uint32_t, std::vector<std::byte>> live;
  std::mt19937 rng(5);
  uint32_t next = 0;
  for (int round = 0; round < 300; ++round) {
    if (live.size() < 20 || rng() % 2 == 0) {
      auto v = MakeValue(256 * KiB + rng() % (768 * KiB), next);
      Status st = s->Put(MakeKey(next), MetaFor(v), v);
      if (st.ok()) live[next] = std::move(v);
      ++next;
    } else {
      auto it = std::next(live.begin(), rng() % live.size());
      ASSERT_OK(s->Delete(MakeKey(it->first)));
      live.erase(it);
    }
  }
  const auto st = s->Stats();
  EXPECT_EQ(st.entries, live.size());
  EXPECT_GT(st.compacted_bytes, 0u);
  EXPECT_LE(st.disk_bytes, st.bytes + 16 * MiB + 2 * 8 * MiB + live.size() * 4096);
  for (auto& [i, v] : live) ExpectValue(*s, i, v);
  s.reset();
  s = Open();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->Stats().entries, live.size());
  for (auto& [i, v] : live) ExpectValue(*s, i, v);
}

}  // namespace
TEST_F(RocksDbSpillTest, ASecondOpenOfAHeldDirNamesTheHolder) {
  auto first = Open();
  ASSERT_TRUE(first);
  auto second = RocksDbSpill::Open(opts_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable) << second.status().ToString();
  EXPECT_NE(second.status().message().find("held by another kvstored (pid " +
                                           std::to_string(getpid()) + ")"),
            std::string::npos)
      << second.status().ToString();
  first.reset();  // closed: the directory is free again
  auto third = RocksDbSpill::Open(opts_);
  EXPECT_OK(third);
}

}  // namespace kvstore::tiers

namespace kvstore::tiers {
namespace {

// A value written after another was deleted takes the dead one's place (when
// it fits) instead of growing the log, also after a reopen, and nothing moves
// or is damaged by it.
TEST_F(RocksDbSpillTest, FreedSpaceIsReusedBeforeTheLogGrows) {
  auto s = Open();
  std::vector<std::vector<std::byte>> v;
  for (uint32_t i = 0; i < 6; ++i) {
    v.push_back(MakeValue(256 * KiB - 100 * i, i));
    PutValue(*s, i, v[i]);
  }
  const uint64_t full = s->Stats().disk_bytes;
  ASSERT_OK(s->Delete(MakeKey(1)));
  ASSERT_OK(s->Delete(MakeKey(2)));  // adjacent to 1: one 512 KiB hole
  v.push_back(MakeValue(400 * KiB, 60));
  PutValue(*s, 6, v[6]);
  EXPECT_EQ(s->Stats().disk_bytes, full) << "a 400 KiB value did not go into a 512 KiB hole";

  s.reset();  // the holes are found again from the index at open
  s = Open();
  ASSERT_OK(s->Delete(MakeKey(4)));
  v.push_back(MakeValue(200 * KiB, 70));
  PutValue(*s, 7, v[7]);
  EXPECT_EQ(s->Stats().disk_bytes, full) << "after reopen";
  for (uint32_t i : {0u, 3u, 5u, 6u, 7u}) ExpectValue(*s, i, v[i]);
  // Everything removed: no segment is left, the head one included.
  for (uint32_t i : {0u, 3u, 5u, 6u, 7u}) ASSERT_OK(s->Delete(MakeKey(i)));
  EXPECT_EQ(s->Stats().disk_bytes, 0u);
  PutValue(*s, 8, v[0]);
  ExpectValue(*s, 8, v[0]);
}

}  // namespace
}  // namespace kvstore::tiers
