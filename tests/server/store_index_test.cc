// The Store's index and what rests on it: namespaces, TTL expiry, the keyed
// hash, spill read-back and batched inserts.
#include "kvstore/server/store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include "status_matchers.h"
#include "store_test_util.h"

// Namespaces: the same key in two namespaces is two entries; nothing crosses.
namespace kvstore::server {
namespace {

using namespace store_test;

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
  ASSERT_OK(PutIn(s, 1, K(1), Bytes(100, 1)));
  ASSERT_OK(PutIn(s, 2, K(1), Bytes(200, 2)));
  std::vector<Key> keys{K(1)};
  EXPECT_EQ(s.MatchPrefix(keys), 0u);  // the default namespace holds nothing
  EXPECT_EQ(s.MatchPrefix(keys, 1), 1u);
  EXPECT_EQ(s.MatchPrefix(keys, 2), 1u);
  EXPECT_EQ(s.MatchPrefix(keys, 3), 0u);

  auto d1 = SelectNow(s, 1, keys);
  ASSERT_OK(d1);
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
  ASSERT_OK(PutIn(s, 6, K(7), Bytes(10, 6)));
  ASSERT_OK(Put(s, K(7), Bytes(10, 0)));  // default namespace
  EXPECT_EQ(got, nullptr);
  EXPECT_EQ(s.Stats(5).waiters, 1u);
  ASSERT_OK(PutIn(s, 5, K(7), Bytes(10, 5)));
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->entries()[0].bytes[0], std::byte{5});
  got->Finish(true);
  EXPECT_EQ(s.MatchPrefix(keys, 6), 1u);
  EXPECT_EQ(s.MatchPrefix(keys), 1u);
  EXPECT_EQ(s.Stats(5).waiters, 0u);
}

TEST(StoreNamespaces, ListShowsOneNamespaceOrAllToAnAdmin) {
  Store s(Opts(), MakeHeapMemory(64 << 20));
  for (uint32_t i = 0; i < 5; ++i) ASSERT_OK(PutIn(s, 1, K(i), Bytes(10, 1)));
  for (uint32_t i = 0; i < 3; ++i) ASSERT_OK(PutIn(s, 2, K(i), Bytes(10, 2)));
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
  ASSERT_OK(PutIn(s, 3, K(1), Bytes(10, 1)));
  ASSERT_OK(PutIn(s, 3, K(2), Bytes(10, 1)));
  Status third = PutIn(s, 3, K(3), Bytes(10, 1));
  EXPECT_EQ(third.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(third.message().find("namespace 3"), std::string::npos) << third.ToString();
  EXPECT_NE(third.message().find("2 entries"), std::string::npos) << third.ToString();
  EXPECT_OK(PutIn(s, 4, K(3), Bytes(10, 1)));  // other namespaces are not limited
  EXPECT_OK(PutIn(s, 3, K(1), Bytes(10, 1)));  // re-insert of a stored key: no new entry
  std::vector<Key> one{K(1)};
  EXPECT_EQ(s.Remove(one, 3), 1u);
  EXPECT_OK(PutIn(s, 3, K(3), Bytes(10, 1)));  // room again

  // Host bytes: reservations in flight count.
  s.SetNamespaceQuota(8, NamespaceQuota{.host_bytes = 1000});
  EntryMeta m;
  m.size = 600;
  m.checksum = ValueChecksum(Bytes(600, 8));
  auto held = s.Reserve(K(1), m, {}, 8);
  ASSERT_OK(held);
  auto second = s.Reserve(K(2), m, {}, 8);
  EXPECT_EQ(second.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(second.status().message().find("namespace 8"), std::string::npos);
  EXPECT_NE(second.status().message().find("host-memory quota of 1000"), std::string::npos)
      << second.status().ToString();
  s.Abort(std::move(held).value());
  EXPECT_OK(PutIn(s, 8, K(2), Bytes(600, 8)));
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
  ASSERT_OK(PutIn(s, 1, K(1), Bytes(100, 1)));
  ASSERT_OK(PutIn(s, 1, K(2), Bytes(5000, 1)));
  ASSERT_OK(PutIn(s, 2, K(1), Bytes(300, 2)));
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
    ASSERT_OK(s.Open());
    // 8 x 256 KiB per namespace through 1 MiB of host: most go to spill.
    for (uint32_t i = 0; i < 8; ++i) {
      ASSERT_OK(PutIn(s, 1, K(i), Value(256 << 10, i)));
      ASSERT_OK(PutIn(s, 2, K(i), Value(256 << 10, 100 + i)));
    }
    EXPECT_GT(s.NamespaceUsageOf(1).spill_bytes, 0u);
    EXPECT_GT(s.NamespaceUsageOf(2).spill_bytes, 0u);
    for (uint32_t i = 0; i < 4; ++i) {
      auto d = Take(s, {K(i)}, /*drop=*/false);
      (void)d;
    }
    ASSERT_OK(s.Close());
  }
  Store again(Opts(), MakeHeapMemory(4 * kMiB), dir.Open());
  auto found = again.Open();
  ASSERT_OK(found);
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

using namespace store_test;

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

TEST(StoreTtl, ExpiryLooksOnlyAtWhatExpiresAmongAHugePopulation) {
  Store s(Opts(256 << 20), MakeArenaMemory(256 << 20, false).value());
  constexpr uint32_t kLong = 200000, kShort = 1000;
  for (uint32_t i = 0; i < kLong; ++i) {
    ASSERT_OK(PutTtl(s, Big(i), 64, std::chrono::hours(1)));
  }
  for (uint32_t i = 0; i < kShort; ++i) {
    ASSERT_OK(PutTtl(s, K(i), 64, std::chrono::milliseconds(30)));
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
  for (uint32_t i = 0; i < 1000; ++i) ASSERT_OK(PutTtl(s, K(i), 10, {}));  // --ttl 0
  EXPECT_EQ(s.ExpireTtl(), 0u);
  EXPECT_EQ(s.counters().ttl_examined.load(), 0u);

  ASSERT_OK(PutTtl(s, K(5000), 5000, std::chrono::milliseconds(1)));
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
  ASSERT_OK(PutTtl(s, K(1), 10, std::chrono::milliseconds(1)));
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

using namespace store_test;

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
    ASSERT_OK(Put(s, k, Bytes(64, 1)));
  }
  EXPECT_EQ(s.MatchPrefix(keys), kCount);
  // One chain of 40,000 made every insert a linear scan; spread keys give runs
  // of tens of slots in a table at most 3/4 full.
  EXPECT_LE(s.IndexLongestChain(), 512u);
  // Also within one namespace other than the default, and the same keys in two.
  for (uint32_t i = 0; i < 1000; ++i) ASSERT_OK(PutIn(s, 9, keys[i], Bytes(64, 9)));
  EXPECT_LE(s.IndexLongestChain(), 512u);
}

}  // namespace
}  // namespace kvstore::server

// Spill read-back on an idle store: a value of a size class the full host
// arena has no slab for is promoted by demoting until a slot of its class is
// free, never refused ("full of entries being read") while nothing is read.
namespace kvstore::server {
namespace {

using namespace store_test;

TEST(StoreSpillReadBack, APromotionNeedingAWholeFreeRunIsNotRefused) {
  SpillDir dir;
  Store s(Opts(4 * kMiB), MakeArenaMemory(4 * kMiB, false).value(), dir.Open());
  ASSERT_OK(s.Open());
  // One 300 KiB value (class 320 KiB), then 256 KiB values (class 256 KiB, 8 a
  // 2 MiB slab): the 300 KiB one goes to spill and 256 KiB slabs fill the arena.
  const auto odd = Value(300 << 10, 999);
  ASSERT_OK(Put(s, K(999), odd));
  for (uint32_t i = 0; i < 24; ++i) ASSERT_OK(Put(s, K(i), Value(256 << 10, i)));
  ASSERT_TRUE(Eventually([&] { return TierOf(s, K(999)) == Tier::kSpill; }));
  // Read it back, and the same again after it went out once more: every read succeeds.
  for (int pass = 0; pass < 3; ++pass) {
    EXPECT_EQ(TakeBytes(s, K(999), /*drop=*/false), odd) << "pass " << pass;
    for (uint32_t i = 0; i < 24; ++i) {
      EXPECT_EQ(TakeBytes(s, K(i), /*drop=*/false), Value(256 << 10, i)) << "key " << i;
    }
  }
  ASSERT_OK(s.Close());
}

}  // namespace
}  // namespace kvstore::server

// Batched insert: many values reserved and committed under one hold each.
namespace kvstore::server {
namespace {

using namespace store_test;

TEST(StoreBatch, ReserveManyAndCommitManyStoreEveryValueAndWakeWaiters) {
  Store s(Opts(), MakeHeapMemory(64 << 20));
  ASSERT_OK(PutIn(s, 4, K(2), Bytes(10, 9)));  // already stored: reported as exists
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
    ASSERT_OK(reserved[i]) << i << ": " << reserved[i].status().ToString();
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
      ASSERT_OK(committed[i]) << i << ": " << committed[i].status().ToString();
      EXPECT_EQ(*committed[i], i != 2) << i;
    }
  }
  EXPECT_EQ(s.MatchPrefix(keys, 4), 5u);  // K(5) was refused
  ASSERT_NE(waited, nullptr);             // both keys arrived in the batch
  EXPECT_TRUE(std::ranges::equal(waited->entries()[1].bytes, values[8]));
  waited->Finish(true);
  auto d = SelectNow(s, 4, {K(31)});
  ASSERT_OK(d);
  EXPECT_TRUE(std::ranges::equal((*d)->entries()[0].bytes, values[31]));
  EXPECT_EQ((*d)->entries()[0].meta.layout, "L1");
  (*d)->Finish(true);
  EXPECT_EQ(s.NamespaceUsageOf(4).reserved_entries, 0u);
  // K(2) before and 30 of the batch (K(2) existed, K(5) refused), less K(7), K(8) taken.
  EXPECT_EQ(s.NamespaceUsageOf(4).entries, 29u);
}

}  // namespace
}  // namespace kvstore::server

// Long work in slices that release the mutex: a List over a large population
// lets inserts through between its slices (they would block forever on a
// List holding the mutex throughout), and still returns every entry that was
// there from start to end, however the index grew meanwhile.
namespace kvstore::server {
namespace {

using namespace store_test;

Key Many(uint32_t i) {
  Key k;
  std::memcpy(k.bytes.data(), &i, 4);
  k.bytes[31] = std::byte{0x5a};
  return k;
}

TEST(StoreSlices, APagedListOfManyEntriesInterleavesWithInserts) {
  Store s(Opts(256 << 20), MakeArenaMemory(256 << 20, false).value());
  constexpr uint32_t kListed = 200000;
  constexpr NamespaceId kOther = 7;
  const auto v = Bytes(64, 3);
  for (uint32_t i = 0; i < kListed; ++i) ASSERT_OK(Put(s, Many(i), v));

  // Between slices: another thread inserts a batch into another namespace
  // (enough of them to make the index grow while the listing walks it).
  constexpr uint32_t kBatch = 2000, kBatches = 100;
  uint32_t slices = 0, inserted = 0;
  s.SetSliceHookForTests([&] {
    ++slices;
    if (slices > kBatches) return;
    std::thread writer([&] {
      for (uint32_t i = 0; i < kBatch; ++i) {
        EXPECT_OK(PutIn(s, kOther, Many(inserted), v));
        ++inserted;
      }
    });
    writer.join();
  });

  std::vector<Key> listed;
  std::vector<std::byte> cursor;
  do {
    ListPage page = s.List(cursor, 100000, -1, {});
    for (const auto& e : page.entries) listed.push_back(e.key);
    cursor = page.next_cursor;
  } while (!cursor.empty());
  s.SetSliceHookForTests(nullptr);

  EXPECT_GT(slices, kBatches);  // the walks ran in slices, inserts between them
  EXPECT_EQ(inserted, kBatch * kBatches);
  std::vector<Key> inserts;
  for (uint32_t i = 0; i < inserted; ++i) inserts.push_back(Many(i));
  EXPECT_EQ(s.MatchPrefix(inserts, kOther), inserted);
  // Every entry of the listed namespace, once each, in key order.
  std::vector<Key> expected;
  for (uint32_t i = 0; i < kListed; ++i) expected.push_back(Many(i));
  std::sort(expected.begin(), expected.end(),
            [](const Key& a, const Key& b) { return a.bytes < b.bytes; });
  ASSERT_EQ(listed.size(), expected.size());
  EXPECT_TRUE(listed == expected);
}

// The demotion's choice of victims runs in slices too: a long run of entries
// that cannot go yet (here waited for by drop_selects, which go last) is
// looked through a slice at a time, other calls getting the lock between.
TEST(StoreSlices, ChoosingVictimsPastManyWaitedForEntriesLetsOtherCallsIn) {
  SpillDir dir;
  auto spill = dir.Open();
  ASSERT_NE(spill, nullptr);
  constexpr uint32_t kSlots = 4096, kWaited = 2500;  // heap slots are 4 KiB
  Store s(Opts(), MakeHeapMemory(kSlots * 4096ull),
          std::move(spill));  // no worker: demotion inline
  const auto v = Bytes(4096, 9);
  std::vector<uint64_t> waiters;
  for (uint32_t i = 0; i < kSlots; ++i) {
    ASSERT_OK(Put(s, Many(i), v));
    if (i < kWaited) {  // the least recently used entries, each waited for with a missing key
      std::vector<Key> keys{Many(i), Many(1'000'000 + i)};
      waiters.push_back(s.DropSelect(keys, [](Result<std::unique_ptr<Delivery>>) {}));
      ASSERT_NE(waiters.back(), 0u);
    }
  }
  ASSERT_EQ(s.counters().evictions.load(), 0u);

  uint32_t slices = 0;
  size_t matched_between = 0;
  s.SetSliceHookForTests([&] {
    ++slices;
    std::thread reader([&] { matched_between += s.MatchPrefix(std::vector<Key>{Many(0)}); });
    reader.join();
  });
  ASSERT_OK(Put(s, Many(kSlots), v));  // full: demotes inline to make room
  s.SetSliceHookForTests(nullptr);

  EXPECT_GT(s.counters().evictions.load(), 0u);
  EXPECT_GT(slices, 0u);
  EXPECT_EQ(matched_between, slices);
  // Nothing waited for went while others could.
  for (uint32_t i = 0; i < kWaited; ++i) EXPECT_EQ(TierOf(s, Many(i)), Tier::kHost) << i;
  EXPECT_EQ(TierOf(s, Many(kWaited)), Tier::kSpill);
  for (uint64_t id : waiters) EXPECT_TRUE(s.CancelWaiter(id));
}

}  // namespace
}  // namespace kvstore::server
