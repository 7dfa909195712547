// The spill tier over segment files whose system calls fail (SegmentIo, the
// value log's seam): EIO on a read, ENOSPC and EIO on a write or a sync.
// Invariants: a failing call is refused with the errno and where it happened,
// nothing half-written is ever served, an entry whose read failed stays, and
// the store works again once the disk does.
#include <cerrno>
#include <filesystem>
#include <vector>

#include <gtest/gtest.h>

#include "kvstore/tiers/rocksdb_spill.h"
#include "spill_test_util.h"
#include "status_matchers.h"

namespace kvstore::tiers {
namespace {

using namespace test;  // NOLINT: the helpers of spill_test_util.h

// The real calls, each of which can be told to fail with an errno. write_after
// lets that many pwrite calls through first (a value written half-way).
class FaultyIo final : public SegmentIo {
 public:
  std::atomic<int> read_errno{0}, write_errno{0}, sync_errno{0}, fallocate_errno{0};
  std::atomic<int> write_after{0};
  std::atomic<int64_t> available{-1};  // >= 0: the disk reports this much free space
  std::atomic<uint64_t> failed{0};

  int64_t Pwrite(uint64_t seg, int fd, const std::byte* p, uint64_t n, uint64_t off) override {
    if (int e = write_errno.load(); e != 0 && write_after.fetch_sub(1) <= 0) return Fail(e);
    // Several calls per value, so a failure can come half-way through one.
    return real_->Pwrite(seg, fd, p, std::min<uint64_t>(n, 64 * KiB), off);
  }
  int64_t Pread(uint64_t seg, int fd, std::byte* p, uint64_t n, uint64_t off) override {
    if (int e = read_errno.load()) return Fail(e);
    return real_->Pread(seg, fd, p, n, off);
  }
  int Fdatasync(uint64_t seg, int fd) override {
    if (int e = sync_errno.load()) return static_cast<int>(Fail(e));
    return real_->Fdatasync(seg, fd);
  }
  int Fallocate(uint64_t seg, int fd, uint64_t off, uint64_t n) override {
    if (int e = fallocate_errno.load()) return static_cast<int>(Fail(e));
    return real_->Fallocate(seg, fd, off, n);
  }
  Space FreeSpace(const std::string& dir) override {
    if (int64_t a = available.load(); a >= 0) return {a, 1ull << 30};
    return real_->FreeSpace(dir);
  }

 private:
  int64_t Fail(int e) {
    ++failed;
    return -e;
  }
  std::shared_ptr<SegmentIo> real_ = PosixSegmentIo();
};

class SegmentFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::MakeSpillDir("kvstore-segment-fault");
    opts_ = {.dir = dir_, .capacity_bytes = 64 * MiB, .segment_bytes = 4 * MiB, .segment_io = io_};
    auto s = RocksDbSpill::Open(opts_);
    ASSERT_OK(s);
    spill_ = std::move(s).value();
  }
  void TearDown() override {
    spill_.reset();
    std::filesystem::remove_all(dir_);
  }

  void ExpectValue(uint32_t i, const std::vector<std::byte>& v) {
    std::vector<std::byte> out(v.size());
    ASSERT_OK(spill_->Get(MakeKey(i), out, nullptr)) << "key " << i;
    EXPECT_TRUE(out == v) << "key " << i << " served wrong";
  }

  std::string dir_;
  SpillOptions opts_;
  std::shared_ptr<FaultyIo> io_ = std::make_shared<FaultyIo>();
  std::unique_ptr<RocksDbSpill> spill_;
};

TEST_F(SegmentFaultTest, ReadErrorNamesTheErrorAndTheSegmentAndKeepsTheEntry) {
  const auto v = MakeValue(300 * KiB + 5, 1);
  ASSERT_OK(spill_->Put(MakeKey(1), MetaFor(v), v));
  io_->read_errno = EIO;
  std::vector<std::byte> out(v.size());
  Status s = spill_->Get(MakeKey(1), out, nullptr);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInternal) << s.ToString();
  for (const char* part : {"Input/output error", "segment 1 offset 0", "check the disk"}) {
    EXPECT_NE(s.message().find(part), std::string::npos) << part << " missing: " << s.ToString();
  }
  EXPECT_GT(io_->failed.load(), 0u);
  EXPECT_EQ(spill_->Stats().checksum_failures, 0u);
  EXPECT_EQ(spill_->Stats().entries, 1u) << "a failed read cost the entry";

  io_->read_errno = 0;  // the disk recovers: the value was never lost
  ExpectValue(1, v);
}

TEST_F(SegmentFaultTest, FullDiskRefusesThePutAndKeepsThePreviousValue) {
  const auto v1 = MakeValue(200 * KiB, 1), v2 = MakeValue(150 * KiB, 2);
  ASSERT_OK(spill_->Put(MakeKey(1), MetaFor(v1), v1));
  const SpillStats before = spill_->Stats();
  for (auto* e : {&io_->fallocate_errno, &io_->write_errno}) {
    e->store(ENOSPC);
    Status s = spill_->Put(MakeKey(2), MetaFor(v2), v2);
    EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
    EXPECT_NE(s.message().find("No space left on device"), std::string::npos) << s.ToString();
    EXPECT_NE(s.message().find("spill disk is full"), std::string::npos) << s.ToString();
    // Replacing key 1 fails too, and leaves the old value in place.
    s = spill_->Put(MakeKey(1), MetaFor(v2), v2);
    EXPECT_FALSE(s.ok());
    e->store(0);
    std::vector<std::byte> out(v2.size());
    EXPECT_EQ(spill_->Get(MakeKey(2), out, nullptr).code(), StatusCode::kNotFound);
    ExpectValue(1, v1);
    EXPECT_EQ(spill_->Stats().entries, before.entries);
    EXPECT_EQ(spill_->Stats().bytes, before.bytes);
  }
  ASSERT_OK(spill_->Put(MakeKey(2), MetaFor(v2), v2));
  ExpectValue(2, v2);
}

TEST_F(SegmentFaultTest, WriteErrorHalfWayStoresNothingEvenAfterReopen) {
  const auto v1 = MakeValue(100 * KiB, 1), v2 = MakeValue(1 * MiB + 7, 2);
  ASSERT_OK(spill_->Put(MakeKey(1), MetaFor(v1), v1));
  io_->write_after = 3;  // three 64 KiB pieces land, then the disk fails
  io_->write_errno = EIO;
  Status s = spill_->Put(MakeKey(2), MetaFor(v2), v2);
  EXPECT_EQ(s.code(), StatusCode::kInternal) << s.ToString();
  EXPECT_NE(s.message().find("Input/output error"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("nothing was stored"), std::string::npos) << s.ToString();
  io_->write_errno = 0;

  // Not served now, nor after a restart (no record points at the half value).
  std::vector<std::byte> out(v2.size());
  EXPECT_EQ(spill_->Get(MakeKey(2), out, nullptr).code(), StatusCode::kNotFound);
  spill_.reset();
  auto reopened = RocksDbSpill::Open(opts_);
  ASSERT_OK(reopened);
  spill_ = std::move(reopened).value();
  EXPECT_EQ(spill_->Get(MakeKey(2), out, nullptr).code(), StatusCode::kNotFound);
  EXPECT_EQ(spill_->Stats().entries, 1u);
  ExpectValue(1, v1);
}

TEST_F(SegmentFaultTest, FailedSyncFailsThePutAndFlush) {
  opts_.sync_writes = true;
  spill_.reset();
  auto reopened = RocksDbSpill::Open(opts_);
  ASSERT_OK(reopened);
  spill_ = std::move(reopened).value();
  const auto v = MakeValue(64 * KiB, 3);
  io_->sync_errno = EIO;
  Status s = spill_->Put(MakeKey(3), MetaFor(v), v);
  EXPECT_EQ(s.code(), StatusCode::kInternal) << s.ToString();
  EXPECT_NE(s.message().find("fdatasync"), std::string::npos) << s.ToString();
  EXPECT_EQ(spill_->Stats().entries, 0u);
  io_->sync_errno = 0;
  ASSERT_OK(spill_->Put(MakeKey(3), MetaFor(v), v));
  ExpectValue(3, v);
}

// The value log keeps free space for the index: a value that would eat into
// it is refused as a full disk (space freed by deletes is still reused), and
// a disk already full at start is refused with a reason instead of the index
// aborting while it recovers its log.
TEST_F(SegmentFaultTest, NearlyFullDiskKeepsAReserveForTheIndex) {
  spill_.reset();
  opts_.disk_reserve_bytes = 8 * MiB;
  auto reopened = RocksDbSpill::Open(opts_);
  ASSERT_OK(reopened);
  spill_ = std::move(reopened).value();
  const auto v1 = MakeValue(300 * KiB, 1), v2 = MakeValue(200 * KiB, 2);
  ASSERT_OK(spill_->Put(MakeKey(1), MetaFor(v1), v1));
  ASSERT_OK(spill_->Put(MakeKey(3), MetaFor(v1), v1));  // keeps the segment when 1 goes

  io_->available = 8 * MiB + 100 * KiB;  // 100 KiB above the reserve
  Status s = spill_->Put(MakeKey(2), MetaFor(v2), v2);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  EXPECT_NE(s.message().find("nearly full"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("kept for the spill index"), std::string::npos) << s.ToString();
  // Freed space is not growth: a value that fits it is taken.
  ASSERT_OK(spill_->Delete(MakeKey(1)));
  ASSERT_OK(spill_->Put(MakeKey(2), MetaFor(v2), v2));
  ExpectValue(2, v2);

  spill_.reset();
  io_->available = 64 * KiB;
  auto full = RocksDbSpill::Open(opts_);
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.status().code(), StatusCode::kResourceExhausted) << full.status().ToString();
  EXPECT_NE(full.status().message().find("is full (64 KiB free"), std::string::npos)
      << full.status().ToString();
  io_->available = -1;
  reopened = RocksDbSpill::Open(opts_);
  ASSERT_OK(reopened);
  spill_ = std::move(reopened).value();
  ExpectValue(2, v2);
  ExpectValue(3, v1);
}

}  // namespace
}  // namespace kvstore::tiers
