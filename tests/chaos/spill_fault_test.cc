// The Store over a spill tier whose writes fail with ENOSPC or whose reads
// fail with EIO (a SpillStore wrapper: the fault-injection seam the tier's
// interface provides). Invariants: nothing acknowledged is lost or served
// wrong, a full or failing disk turns into refusals with a reason, and once
// the fault clears the store works again and its accounting returns to zero.
#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>

#include <gtest/gtest.h>

#include "eventually.h"
#include "kvstore/server/store.h"
#include "kvstore/tiers/rocksdb_spill.h"
#include "status_matchers.h"
#include "values.h"

namespace kvstore::server {
namespace {

using chaos::ChaosKey;
using chaos::ValueFor;
using testing::Eventually;
constexpr uint64_t kMiB = 1 << 20;

class FaultySpill : public tiers::SpillStore {
 public:
  explicit FaultySpill(std::unique_ptr<tiers::SpillStore> inner) : inner_(std::move(inner)) {}
  std::atomic<int> put_errno{0};  // nonzero: Put fails as a segment write would
  std::atomic<int> get_errno{0};  // nonzero: Get fails as a segment read would
  std::atomic<uint64_t> failed_puts{0};
  std::atomic<uint64_t> failed_gets{0};

  Status Put(const tiers::SpillKey& key, const EntryMeta& meta,
             std::span<const std::byte> value) override {
    if (int e = put_errno.load()) {
      ++failed_puts;
      return Status::Internal(std::string("spill put: value log: write (injected): ") +
                              std::strerror(e));
    }
    return inner_->Put(key, meta, value);
  }
  Result<EntryMeta> GetMeta(const tiers::SpillKey& key) override { return inner_->GetMeta(key); }
  Status Get(const tiers::SpillKey& key, std::span<std::byte> dst, EntryMeta* meta) override {
    if (int e = get_errno.load()) {
      ++failed_gets;
      return Status::Internal(std::string("spill get: value log: read (injected): ") +
                              std::strerror(e));
    }
    return inner_->Get(key, dst, meta);
  }
  Status Delete(const tiers::SpillKey& key) override { return inner_->Delete(key); }
  Status ForEach(const std::function<bool(const tiers::SpillKey&, const EntryMeta&)>& fn) override {
    return inner_->ForEach(fn);
  }
  Status Flush() override { return inner_->Flush(); }
  tiers::SpillStats Stats() const override { return inner_->Stats(); }

 private:
  std::unique_ptr<tiers::SpillStore> inner_;
};

class SpillFault : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string t =
        (std::filesystem::temp_directory_path() / "kvstore-spill-fault-XXXXXX").string();
    dir_ = ::mkdtemp(t.data());
    tiers::SpillOptions so;
    so.dir = dir_;
    so.capacity_bytes = spill_capacity_;
    so.segment_bytes = 4 * kMiB;
    auto inner = tiers::RocksDbSpill::Open(so);
    ASSERT_OK(inner);
    auto faulty = std::make_unique<FaultySpill>(std::move(inner).value());
    spill_ = faulty.get();
    StoreOptions o;
    o.memory_bytes = 4 * kMiB;
    o.default_ttl = std::chrono::milliseconds(0);
    store_ = std::make_unique<Store>(o, MakeHeapMemory(4 * kMiB), std::move(faulty));
    ASSERT_OK(store_->Open());
  }
  void TearDown() override {
    if (store_) (void)store_->Close();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  Status Put(uint64_t i) {
    const Key k = ChaosKey(run_, i);
    const auto v = ValueFor(k, Size(i));
    EntryMeta m;
    m.size = v.size();
    m.checksum = ValueChecksum(v);
    auto r = store_->Reserve(k, m, {});
    if (!r.ok()) return r.status();
    if (r->exists) return Status::Ok();
    std::memcpy(r->slot.data, v.data(), v.size());
    auto c = store_->Commit(std::move(r).value());
    return c.ok() ? Status::Ok() : c.status();
  }

  // Select of key i: its bytes, or the Status the store answered.
  Result<std::vector<std::byte>> Read(uint64_t i) {
    struct Got {
      std::mutex mu;
      std::condition_variable cv;
      std::optional<Result<std::unique_ptr<Delivery>>> result;
    };
    auto got = std::make_shared<Got>();
    const Key k = ChaosKey(run_, i);
    store_->Select(std::span<const Key>(&k, 1), [got](Result<std::unique_ptr<Delivery>> r) {
      std::lock_guard lock(got->mu);
      got->result.emplace(std::move(r));
      got->cv.notify_all();
    });
    std::unique_lock lock(got->mu);
    if (!got->cv.wait_for(lock, std::chrono::seconds(10), [&] { return got->result.has_value(); }))
      return Status::Timeout("no delivery within 10 s");
    if (!got->result->ok()) return got->result->status();
    auto& d = got->result->value();
    std::vector<std::byte> out(d->entries()[0].bytes.begin(), d->entries()[0].bytes.end());
    d->Finish(true);
    return out;
  }

  // Every acknowledged key reads back exactly (retrying "retry later" refusals).
  void ExpectAllExact(uint64_t acked_below, const std::vector<bool>& acked) {
    for (uint64_t i = 0; i < acked_below; ++i) {
      if (!acked[i]) continue;
      Result<std::vector<std::byte>> got = Status::Internal("not read");
      ASSERT_TRUE(Eventually([&] {
        got = Read(i);
        return got.ok() || got.status().code() != StatusCode::kResourceExhausted;
      })) << "key "
          << i << ": " << got.status().ToString();
      ASSERT_OK(got) << "acknowledged key " << i << " is gone";
      EXPECT_TRUE(*got == ValueFor(ChaosKey(run_, i), Size(i))) << "key " << i << " served wrong";
    }
  }

  // Writes keys 0..n-1 and waits until some of them sit in spill.
  std::vector<bool> FillPastMemory(uint64_t n) {
    std::vector<bool> acked;
    for (uint64_t i = 0; i < n; ++i) {
      EXPECT_OK(Put(i));
      acked.push_back(true);
    }
    EXPECT_TRUE(Eventually([&] {
      for (const auto& t : store_->Stats().tiers)
        if (t.tier == Tier::kSpill && t.entries > 0) return true;
      return false;
    })) << "nothing was demoted to spill";
    return acked;
  }

  static size_t Size(uint64_t i) { return 64 * 1024 + (i * 7919) % (192 * 1024); }

  uint64_t spill_capacity_ = 256 * kMiB;
  const uint64_t run_ = 0x5eed;
  std::string dir_;
  FaultySpill* spill_ = nullptr;
  std::unique_ptr<Store> store_;
};

TEST_F(SpillFault, FullDiskRefusesInsertsKeepsEverythingAndRecovers) {
  spill_->put_errno = ENOSPC;
  std::vector<bool> acked;
  Status refused;
  uint64_t i = 0;
  for (; i < 200; ++i) {
    Status s = Put(i);
    acked.push_back(s.ok());
    if (!s.ok()) {
      refused = s;
      break;
    }
  }
  ASSERT_FALSE(refused.ok()) << "4 MiB of host memory took 200 values with no spill";
  EXPECT_EQ(refused.code(), StatusCode::kResourceExhausted) << refused.ToString();
  EXPECT_GT(spill_->failed_puts.load(), 0u);
  ExpectAllExact(i, acked);

  // The disk has room again: demotion resumes and inserts are taken.
  spill_->put_errno = 0;
  uint64_t more = i + 40;
  for (uint64_t j = i; j < more; ++j) {
    Status s;
    ASSERT_TRUE(Eventually([&] {
      s = Put(j);
      return s.ok();
    })) << "insert "
        << j << " after the disk recovered: " << s.ToString();
    acked.push_back(true);
  }
  ExpectAllExact(more, acked);

  std::vector<Key> all;
  for (uint64_t j = 0; j < more; ++j) all.push_back(ChaosKey(run_, j));
  store_->Remove(all);
  EXPECT_TRUE(Eventually([&] {
    StoreStats st = store_->Stats();
    for (const auto& t : st.tiers) {
      if (t.entries != 0) return false;
      if (t.tier == Tier::kHost && t.used_bytes != 0) return false;
    }
    return true;
  })) << "entries or host memory left after removing everything";
}

// Fills past the host tier so that entries sit in spill; returns the keys written.
TEST_F(SpillFault, ReadErrorsAreRefusalsNeverWrongBytesAndLoseNothing) {
  std::vector<bool> acked = FillPastMemory(60);
  spill_->get_errno = EIO;
  uint64_t refused = 0;
  for (uint64_t i = 0; i < 60; ++i) {
    auto got = Read(i);
    if (got.ok()) {
      EXPECT_TRUE(*got == ValueFor(ChaosKey(run_, i), Size(i))) << "key " << i << " served wrong";
    } else {
      ++refused;
    }
  }
  EXPECT_GT(refused, 0u) << "no read reached the failing disk";
  EXPECT_GT(spill_->failed_gets.load(), 0u);

  // A transient read error must not have cost the entry.
  spill_->get_errno = 0;
  ExpectAllExact(60, acked);
}

// Disabled until the store reports it: a read that fails on the disk (EIO) is
// answered "ResourceExhausted: ... host memory (it is full of entries being
// read); retry", which names neither the disk nor the error and tells the
// caller to retry. Enable once the refusal carries the cause.
TEST_F(SpillFault, ReadErrorRefusalNamesTheIoError) {
  FillPastMemory(60);
  spill_->get_errno = EIO;
  for (uint64_t i = 0; i < 60; ++i) {
    auto got = Read(i);
    if (got.ok()) continue;
    EXPECT_NE(got.status().message().find("Input/output error"), std::string::npos)
        << got.status().ToString();
  }
}

// Host memory full and nothing demotable (the disk refuses writes): a select
// of a spilled entry must swap it with the least-recently-used host entry. When
// the swap's read fails (EIO), the caller is told of the disk, not of memory,
// and nothing moves: the spilled entry stays listed, the host entries intact.
TEST_F(SpillFault, SwapInReadErrorNamesTheIoErrorAndKeepsBothEntries) {
  std::vector<bool> acked = FillPastMemory(60);
  spill_->put_errno = ENOSPC;  // no demotion: the host tier fills up, every size class
  const uint64_t n = 400;
  uint64_t refused = 0;
  for (uint64_t i = 60; i < n; ++i) {
    acked.push_back(Put(i).ok());
    refused += !acked.back();
  }
  ASSERT_GT(refused, 0u) << "host memory never filled";
  auto keys_in = [&](Tier tier) {
    std::vector<uint64_t> out;
    const auto page = store_->List({}, 0, static_cast<int>(tier), {});
    for (uint64_t i = 0; i < n; ++i)
      for (const auto& e : page.entries)
        if (e.key == ChaosKey(run_, i)) out.push_back(i);
    return out;
  };
  const std::vector<uint64_t> spilled = keys_in(Tier::kSpill);
  const std::vector<uint64_t> in_host = keys_in(Tier::kHost);
  ASSERT_FALSE(spilled.empty());
  ASSERT_FALSE(in_host.empty());
  // The largest spilled value: no host slot is free for it.
  const uint64_t k = *std::max_element(spilled.begin(), spilled.end(),
                                       [](uint64_t a, uint64_t b) { return Size(a) < Size(b); });

  spill_->get_errno = EIO;
  const uint64_t gets_before = spill_->failed_gets.load();
  const uint64_t puts_before = spill_->failed_puts.load();
  auto got = Read(k);
  ASSERT_FALSE(got.ok()) << "key " << k << " was served from a failing disk";
  EXPECT_GT(spill_->failed_gets.load(), gets_before) << "the select never read the disk";
  EXPECT_GT(spill_->failed_puts.load(), puts_before) << "host memory had room: no swap";
  EXPECT_NE(got.status().code(), StatusCode::kResourceExhausted) << got.status().ToString();
  EXPECT_NE(got.status().message().find("Input/output error"), std::string::npos)
      << got.status().ToString();
  EXPECT_EQ(got.status().message().find("host memory"), std::string::npos)
      << got.status().ToString();

  // Nothing moved: the entry is still on disk, every host entry byte-exact.
  const std::vector<uint64_t> spilled_after = keys_in(Tier::kSpill);
  EXPECT_NE(std::find(spilled_after.begin(), spilled_after.end(), k), spilled_after.end())
      << "key " << k << " left the spill tier";
  for (uint64_t i : in_host) {
    auto v = Read(i);
    ASSERT_OK(v) << "host key " << i;
    EXPECT_TRUE(*v == ValueFor(ChaosKey(run_, i), Size(i))) << "host key " << i << " changed";
  }

  // The disk recovers: the entry reads back exactly.
  spill_->get_errno = 0;
  spill_->put_errno = 0;
  ExpectAllExact(n, acked);
}

// A spill tier just big enough for the population: reading a spilled entry
// back finds host memory full of entries that are not on disk, so the store
// swaps (deletes the read entry's disk copy, demotes another in its place).
class SpillReadBack : public SpillFault {
 protected:
  SpillReadBack() { spill_capacity_ = 18944 * 1024; }  // 18.5 MiB for ~18.3 MiB stored
};

// Reading spilled entries back and letting them be demoted again must not grow
// the spill tier's disk use: the space a read-back frees is reused.
TEST_F(SpillReadBack, ReadPassesDoNotGrowSpillDisk) {
  constexpr uint64_t kEntries = 120;  // ~18 MiB through 4 MiB of host memory
  std::vector<bool> acked = FillPastMemory(kEntries);
  auto spill_disk = [&] {
    for (const auto& t : store_->Stats().tiers)
      if (t.tier == Tier::kSpill) return t.used_bytes;
    return uint64_t{0};
  };
  std::vector<uint64_t> after_pass;
  for (int pass = 0; pass < 3; ++pass) {
    ExpectAllExact(kEntries, acked);  // byte-exact, every pass
    after_pass.push_back(spill_disk());
  }
  // Slack for two values that fit no freed extent (256 KiB is the largest).
  const uint64_t bound = 2 * 256 * 1024;
  EXPECT_LE(after_pass[2], after_pass[0] + bound)
      << "spill disk after pass 1: " << after_pass[0] << ", pass 2: " << after_pass[1]
      << ", pass 3: " << after_pass[2];
  EXPECT_EQ(spill_->failed_puts.load(), 0u);
}

}  // namespace
}  // namespace kvstore::server
