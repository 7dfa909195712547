// DurableWriter: one Flush covers every write that finished before it began
// (group commit), a write is acknowledged only after such a Flush, and a
// failed Flush fails the writes it was to cover and takes their values back.
#include "kvstore/tiers/durable_writer.h"

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "status_matchers.h"

namespace kvstore::tiers {
namespace {

Key MakeKey(uint32_t i) {
  Key k;
  k.bytes[0] = std::byte(i);
  k.bytes[1] = std::byte(i >> 8);
  return k;
}

// An in-memory SpillStore whose Flush can be held until a number of Puts have
// arrived, and made to fail.
class HeldFlushSpill final : public SpillStore {
 public:
  uint64_t hold_first_flush_until_puts = 0;  // 0 = never hold
  Status flush_result;

  Status Put(const SpillKey& key, const EntryMeta& meta, std::span<const std::byte>) override {
    std::lock_guard lock(mu_);
    values_[key.key.bytes[0]] = meta;
    ++puts_;
    cv_.notify_all();
    return Status::Ok();
  }
  Result<EntryMeta> GetMeta(const SpillKey& key) override {
    std::lock_guard lock(mu_);
    auto it = values_.find(key.key.bytes[0]);
    if (it == values_.end()) return Status::NotFound("absent");
    return it->second;
  }
  Status Get(const SpillKey&, std::span<std::byte>, EntryMeta*) override { return Status::Ok(); }
  Status Delete(const SpillKey& key) override {
    std::lock_guard lock(mu_);
    return values_.erase(key.key.bytes[0]) ? Status::Ok() : Status::NotFound("absent");
  }
  Status ForEach(const std::function<bool(const SpillKey&, const EntryMeta&)>&) override {
    return Status::Ok();
  }
  Status Flush() override {
    std::unique_lock lock(mu_);
    if (flushes_++ == 0 && hold_first_flush_until_puts > 0) {
      cv_.wait(lock, [&] { return puts_ >= hold_first_flush_until_puts; });
    }
    return flush_result;
  }
  SpillStats Stats() const override { return {}; }

  uint64_t flushes() const {
    std::lock_guard lock(mu_);
    return flushes_;
  }
  size_t size() const {
    std::lock_guard lock(mu_);
    return values_.size();
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::byte, EntryMeta> values_;
  uint64_t puts_ = 0;
  uint64_t flushes_ = 0;
};

TEST(DurableWriterTest, OneFlushCoversTheWritesThatWaitedForTheRunningOne) {
  constexpr int kWriters = 8;
  HeldFlushSpill spill;
  // The first writer's Flush runs until every writer has put its value; the
  // seven who wait behind it then share one more Flush.
  spill.hold_first_flush_until_puts = kWriters;
  DurableWriter writer(&spill);
  const std::vector<std::byte> value(4096, std::byte{7});
  std::atomic<int> ok{0};
  std::thread first([&] {
    if (writer.Write(MakeKey(0), EntryMeta{.size = value.size()}, value).ok()) ++ok;
  });
  std::vector<std::thread> rest;
  for (int i = 1; i < kWriters; ++i) {
    rest.emplace_back([&, i] {
      if (writer.Write(MakeKey(i), EntryMeta{.size = value.size()}, value).ok()) ++ok;
    });
  }
  first.join();
  for (auto& t : rest) t.join();
  EXPECT_EQ(ok.load(), kWriters);
  EXPECT_EQ(spill.size(), static_cast<size_t>(kWriters));
  EXPECT_LE(spill.flushes(), 3u) << "each write ran its own Flush: no group commit";
  EXPECT_EQ(writer.stats().writes, static_cast<uint64_t>(kWriters));
  EXPECT_EQ(writer.stats().flushes, spill.flushes());
}

TEST(DurableWriterTest, AFailedFlushFailsTheWriteAndTakesTheValueBack) {
  HeldFlushSpill spill;
  spill.flush_result =
      Status::Internal("value log: fdatasync of segment 3 failed: Input/output error");
  DurableWriter writer(&spill);
  const std::vector<std::byte> value(100, std::byte{1});
  Status s = writer.Write(MakeKey(1), EntryMeta{.size = value.size()}, value);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("Input/output error"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("durable write-through"), std::string::npos) << s.ToString();
  EXPECT_EQ(spill.size(), 0u) << "an unacknowledged value stayed on the spill tier";
  EXPECT_EQ(writer.stats().failed, 1u);

  spill.flush_result = Status::Ok();  // the disk recovers
  ASSERT_OK(writer.Write(MakeKey(1), EntryMeta{.size = value.size()}, value));
  EXPECT_EQ(spill.size(), 1u);
}

}  // namespace
}  // namespace kvstore::tiers
