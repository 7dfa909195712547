// The host and spill tiers through the real daemon: demotion under pressure,
// promotion on read, warm restart after SIGTERM and after kill -9, and
// corruption on disk detected and never served.
#include <algorithm>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "test_util.h"

namespace kvstore::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr size_t kValue = 4 << 20;
constexpr uint32_t kCount = 40;  // 160 MiB through a 64 MiB host tier

std::vector<std::string> TierArgs() { return {"--memory", "64MiB", "--spill", "1GiB"}; }

void InsertAll(Client& c) {
  for (uint32_t i = 0; i < kCount; ++i) {
    auto r = c.Insert(TestKey(i), RandomBytes(kValue, i));
    ASSERT_OK(r) << "insert " << i << ": " << r.status().ToString();
  }
}

double TierEntries(const TestDaemon& d, const char* tier) {
  return d.Metric("kvstore_entries", {{"tier", tier}}).value_or(-1);
}

TEST(Tiers, ValuesBeyondMemorySpillAndComeBackByteExact) {
  auto d = StartDaemon(TierArgs());
  ASSERT_NE(d, nullptr);
  auto c = ConnectTo(*d);
  InsertAll(*c);
  EXPECT_GT(d->Metric("kvstore_evictions_total").value_or(0), 0.0);
  EXPECT_GT(TierEntries(*d, "spill"), 0.0);
  auto stats = c->Stats();
  ASSERT_OK(stats);
  ASSERT_EQ(stats->tiers.size(), 2u);
  // From one snapshot: the worker may still be demoting between two scrapes.
  EXPECT_EQ(stats->tiers[0].entries + stats->tiers[1].entries, kCount);
  EXPECT_LE(stats->tiers[0].used_bytes, 64u << 20);

  ListOptions lo;
  lo.tier = static_cast<int>(Tier::kSpill);
  auto spilled = c->List(lo);
  ASSERT_OK(spilled);
  EXPECT_FALSE(spilled->entries.empty());
  for (const auto& e : spilled->entries) EXPECT_EQ(e.meta.tier, Tier::kSpill);

  // Every value through select, then through drop_select.
  for (uint32_t i = 0; i < kCount; ++i) {
    std::vector<Key> k{TestKey(i)};
    auto got = c->Select(k);
    ASSERT_OK(got);
    ASSERT_EQ((*got)[0].value, RandomBytes(kValue, i)) << "select " << i;
  }
  EXPECT_GT(d->Metric("kvstore_promotions_total").value_or(0), 0.0);
  for (uint32_t i = 0; i < kCount; ++i) {
    std::vector<Key> k{TestKey(i)};
    auto got = c->DropSelect(k, 10s);
    ASSERT_OK(got);
    ASSERT_EQ((*got)[0].value, RandomBytes(kValue, i)) << "drop_select " << i;
  }
  EXPECT_TRUE(Eventually(
      [&] { return TierEntries(*d, "host") == 0.0 && TierEntries(*d, "spill") == 0.0; }));
  EXPECT_GT(d->Metric("kvstore_spill_write_bytes_total").value_or(0), 0.0);
  EXPECT_EQ(d->Metric("kvstore_checksum_failures_total"), 0.0);
}

TEST(Tiers, RestartAfterSigtermFindsEverything) {
  TempDir dir("kvstore-warm");
  {
    auto d = StartDaemon(TierArgs(), dir.path());
    ASSERT_NE(d, nullptr);
    auto c = ConnectTo(*d);
    InsertAll(*c);
    EXPECT_EQ(d->StopWith(SIGTERM), 0);
  }
  auto d = StartDaemon(TierArgs(), dir.path());
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(TierEntries(*d, "spill"), kCount);
  auto c = ConnectTo(*d);
  for (uint32_t i = 0; i < kCount; ++i) {
    std::vector<Key> k{TestKey(i)};
    auto got = c->DropSelect(k, 10s);
    ASSERT_OK(got);
    ASSERT_EQ((*got)[0].value, RandomBytes(kValue, i)) << "entry " << i;
  }
  // Taken entries are gone from disk too: a second restart finds none.
  EXPECT_EQ(d->StopWith(SIGTERM), 0);
  auto again = StartDaemon(TierArgs(), dir.path());
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(TierEntries(*again, "spill"), 0.0);
}

TEST(Tiers, KillNineKeepsWhatReachedSpill) {
  TempDir dir("kvstore-kill9");
  std::vector<Key> on_disk;
  {
    auto d = StartDaemon(TierArgs(), dir.path());
    ASSERT_NE(d, nullptr);
    auto c = ConnectTo(*d);
    InsertAll(*c);
    ListOptions lo;
    lo.tier = static_cast<int>(Tier::kSpill);
    auto spilled = c->List(lo);
    ASSERT_OK(spilled);
    for (const auto& e : spilled->entries) on_disk.push_back(e.key);
    ASSERT_FALSE(on_disk.empty());
    EXPECT_EQ(d->StopWith(SIGKILL), 128 + SIGKILL);
  }
  auto d = StartDaemon(TierArgs(), dir.path());
  ASSERT_NE(d, nullptr);
  auto c = ConnectTo(*d);
  EXPECT_GE(TierEntries(*d, "spill"), static_cast<double>(on_disk.size()));
  for (uint32_t i = 0; i < kCount; ++i) {
    Key k = TestKey(i);
    if (std::find(on_disk.begin(), on_disk.end(), k) == on_disk.end()) continue;
    std::vector<Key> one{k};
    auto got = c->Select(one);
    ASSERT_OK(got);
    ASSERT_EQ((*got)[0].value, RandomBytes(kValue, i)) << "entry " << i;
  }
}

TEST(Tiers, CorruptSpillValueIsDetectedAndNeverServed) {
  TempDir dir("kvstore-corrupt");
  {
    auto d = StartDaemon(TierArgs(), dir.path());
    ASSERT_NE(d, nullptr);
    auto c = ConnectTo(*d);
    InsertAll(*c);
    EXPECT_EQ(d->StopWith(SIGTERM), 0);
  }
  // Flip bytes in the middle of every value segment on disk.
  size_t corrupted = 0;
  for (const auto& f : fs::recursive_directory_iterator(dir.path() + "/spill")) {
    if (!f.is_regular_file() || f.path().extension() != ".vlog" || f.file_size() < (1 << 20)) {
      continue;
    }
    std::fstream io(f.path(), std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(static_cast<std::streamoff>(f.file_size() / 2));
    char junk[64];
    std::memset(junk, 0x5a, sizeof(junk));
    io.write(junk, sizeof(junk));
    ++corrupted;
  }
  ASSERT_GT(corrupted, 0u);
  auto d = StartDaemon(TierArgs(), dir.path());
  ASSERT_NE(d, nullptr);
  auto c = ConnectTo(*d);
  size_t served = 0, refused = 0;
  for (uint32_t i = 0; i < kCount; ++i) {
    std::vector<Key> k{TestKey(i)};
    auto got = c->Select(k);
    if (got.ok()) {
      ASSERT_EQ((*got)[0].value, RandomBytes(kValue, i)) << "entry " << i << " served corrupt";
      ++served;
    } else {
      EXPECT_NE(got.status().code(), StatusCode::kOk);
      ++refused;
    }
  }
  EXPECT_GE(refused, 1u);
  EXPECT_GE(d->Metric("kvstore_checksum_failures_total").value_or(0), 1.0);
  // The bad entries were removed, not left to fail again.
  std::vector<Key> all;
  for (uint32_t i = 0; i < kCount; ++i) all.push_back(TestKey(i));
  EXPECT_EQ(TierEntries(*d, "host") + TierEntries(*d, "spill"), static_cast<double>(served));
}

}  // namespace
}  // namespace kvstore::testing

namespace kvstore::testing {
namespace {

TEST(Tiers, BothTiersFullRefusesInsertsAndKeepsEverythingStored) {
  auto d = StartDaemon({"--memory", "16MiB", "--spill", "32MiB"});
  ASSERT_NE(d, nullptr);
  auto c = ConnectTo(*d);
  std::vector<uint32_t> stored;
  Status refused;
  for (uint32_t i = 0; i < 40; ++i) {
    auto r = c->Insert(TestKey(i), RandomBytes(2 << 20, i));
    if (!r.ok()) {
      refused = r.status();
      break;
    }
    stored.push_back(i);
  }
  EXPECT_EQ(refused.code(), StatusCode::kResourceExhausted) << refused.ToString();
  EXPECT_NE(refused.message().find("spill"), std::string::npos) << refused.ToString();
  // 16 MiB host + 32 MiB spill hold about 24 values of 2 MiB; none was dropped.
  EXPECT_GE(stored.size(), 20u);
  EXPECT_GE(d->Metric("kvstore_refused_inserts_total").value_or(0), 1.0);
  for (uint32_t i : stored) {
    std::vector<Key> k{TestKey(i)};
    auto got = c->DropSelect(k, std::chrono::seconds(10));
    ASSERT_OK(got);
    ASSERT_EQ((*got)[0].value, RandomBytes(2 << 20, i)) << "entry " << i;
  }
}

}  // namespace
}  // namespace kvstore::testing
