// The LookupBuffer contract against the real daemon: insert, blocking
// drop_select, select, match_prefix, remove, list, stats, TTL and limits.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <future>

#include "test_util.h"

namespace kvstore::testing {
namespace {

using namespace std::chrono_literals;

TEST(LookupBuffer, WaiterReceivesBytesInsertedLaterByAnotherClient) {
  auto d = StartDaemon();
  ASSERT_NE(d, nullptr);
  auto consumer = ConnectTo(*d);
  auto producer = ConnectTo(*d);
  Key k = TestKey(1);
  auto value = RandomBytes(1 << 20, 7);

  auto waiting = std::async(std::launch::async, [&] {
    std::vector<Key> keys{k};
    return consumer->DropSelect(keys, 20s);
  });
  ASSERT_TRUE(Eventually([&] { return d->Metric("kvstore_waiters") == 1.0; }));
  auto inserted = producer->Insert(k, value);
  ASSERT_OK(inserted);
  EXPECT_TRUE(*inserted);

  auto got = waiting.get();
  ASSERT_OK(got);
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].key, k);
  EXPECT_EQ((*got)[0].value, value);
  EXPECT_EQ((*got)[0].meta.size, value.size());

  // Taken: gone from the store, and a second taker times out.
  std::vector<Key> keys{k};
  EXPECT_TRUE(Eventually([&] { return producer->MatchPrefix(keys).value() == 0; }));
  auto again = consumer->DropSelect(keys, 300ms);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kTimeout) << again.status().ToString();
  EXPECT_EQ(d->Metric("kvstore_waiters"), 0.0);
}

TEST(LookupBuffer, ManyWaitersOneInsertExactlyOneWins) {
  auto d = StartDaemon();
  ASSERT_NE(d, nullptr);
  constexpr int kWaiters = 8;
  auto client = ConnectTo(*d, kWaiters + 2);
  Key k = TestKey(2);
  std::vector<Key> keys{k};
  std::vector<std::future<Result<std::vector<Entry>>>> waiters;
  for (int i = 0; i < kWaiters; ++i) {
    waiters.push_back(std::async(std::launch::async, [&] { return client->DropSelect(keys, 3s); }));
  }
  ASSERT_TRUE(Eventually([&] { return d->Metric("kvstore_waiters") == kWaiters; }));
  auto value = RandomBytes(64 << 10, 3);
  ASSERT_OK(client->Insert(k, value));
  int winners = 0, timeouts = 0;
  for (auto& w : waiters) {
    auto r = w.get();
    if (r.ok()) {
      ++winners;
      EXPECT_EQ((*r)[0].value, value);
    } else {
      EXPECT_EQ(r.status().code(), StatusCode::kTimeout) << r.status().ToString();
      ++timeouts;
    }
  }
  EXPECT_EQ(winners, 1);
  EXPECT_EQ(timeouts, kWaiters - 1);
  EXPECT_TRUE(Eventually([&] { return d->Metric("kvstore_waiters") == 0.0; }));
}

TEST(LookupBuffer, MultiKeyDropSelectWaitsForEveryKey) {
  auto d = StartDaemon();
  ASSERT_NE(d, nullptr);
  auto client = ConnectTo(*d);
  std::vector<Key> keys{TestKey(10), TestKey(11), TestKey(12)};
  auto waiting = std::async(std::launch::async, [&] { return client->DropSelect(keys, 20s); });
  ASSERT_OK(client->Insert(keys[0], RandomBytes(100, 0)));
  ASSERT_OK(client->Insert(keys[2], RandomBytes(300, 2)));
  EXPECT_EQ(waiting.wait_for(300ms), std::future_status::timeout);  // keys[1] still missing
  EXPECT_EQ(*client->MatchPrefix(keys), 1u);
  ASSERT_OK(client->Insert(keys[1], RandomBytes(200, 1)));
  auto got = waiting.get();
  ASSERT_OK(got);
  ASSERT_EQ(got->size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ((*got)[i].key, keys[i]);
    EXPECT_EQ((*got)[i].value, RandomBytes(100 * (i + 1), i));
  }
}

TEST(LookupBuffer, SelectMatchRemoveListStats) {
  auto d = StartDaemon();
  ASSERT_NE(d, nullptr);
  auto c = ConnectTo(*d);
  std::vector<uint32_t> tokens(64);
  for (uint32_t i = 0; i < tokens.size(); ++i) tokens[i] = i * 7;
  KeyOptions ko;
  ko.ns = "llama-tiny";
  auto keys = PrefixKeys(tokens, ko);
  ASSERT_EQ(keys.size(), 4u);
  for (size_t i = 0; i < 3; ++i) {
    InsertOptions io;
    io.layout = "test/v1";
    ASSERT_OK(c->Insert(keys[i], RandomBytes(4096, i), io));
  }
  // Idempotent re-insert.
  auto again = c->Insert(keys[0], RandomBytes(4096, 0));
  ASSERT_OK(again);
  EXPECT_FALSE(*again);

  EXPECT_EQ(*c->MatchPrefix(keys), 3u);
  std::vector<Key> first_two(keys.begin(), keys.begin() + 2);
  auto sel = c->Select(first_two);
  ASSERT_OK(sel);
  EXPECT_EQ((*sel)[1].value, RandomBytes(4096, 1));
  EXPECT_EQ((*sel)[1].meta.layout, "test/v1");
  EXPECT_EQ(*c->MatchPrefix(keys), 3u);  // select does not drop

  auto missing = c->Select(keys);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);

  std::vector<std::byte> small(10);
  std::vector<std::span<std::byte>> dst{small};
  std::vector<Key> one{keys[0]};
  auto into = c->SelectInto(one, dst);
  EXPECT_EQ(into.status().code(), StatusCode::kInvalidArgument);
  ASSERT_OK(c->Ping());  // the connection pool is still healthy after that refusal

  ListOptions lo;
  lo.limit = 2;
  auto page = c->List(lo);
  ASSERT_OK(page);
  EXPECT_EQ(page->entries.size(), 2u);
  EXPECT_FALSE(page->next_cursor.empty());
  lo.cursor = page->next_cursor;
  auto page2 = c->List(lo);
  ASSERT_OK(page2);
  EXPECT_EQ(page2->entries.size(), 1u);
  EXPECT_TRUE(page2->next_cursor.empty());
  EXPECT_LT(page->entries[1].key, page2->entries[0].key);

  auto shown = c->Show(keys[2]);
  ASSERT_OK(shown);
  EXPECT_EQ(shown->meta.size, 4096u);
  EXPECT_EQ(c->Show(keys[3]).status().code(), StatusCode::kNotFound);

  auto stats = c->Stats();
  ASSERT_OK(stats);
  ASSERT_FALSE(stats->tiers.empty());
  EXPECT_EQ(stats->tiers[0].entries, 3u);
  EXPECT_EQ(stats->tiers[0].bytes, 3u * 4096);
  EXPECT_GE(stats->connections, 1u);

  EXPECT_EQ(*c->Remove(keys), 3u);
  EXPECT_EQ(*c->MatchPrefix(keys), 0u);
  EXPECT_EQ(d->Metric("kvstore_entries", {{"tier", "host"}}), 0.0);
  EXPECT_GE(d->Metric("kvstore_requests_total", {{"op", "insert"}, {"result", "ok"}}).value_or(0),
            3.0);
}

TEST(LookupBuffer, ClientKilledWhileWaitingLeavesNoWaiter) {
  auto d = StartDaemon();
  ASSERT_NE(d, nullptr);
  pid_t child = ::fork();
  if (child == 0) {
    ClientOptions o;
    o.address = d->address();
    auto c = Client::Connect(o);
    if (!c.ok()) ::_exit(3);
    std::vector<Key> keys{TestKey(99)};
    (void)(*c)->DropSelect(keys, std::chrono::minutes(5));
    ::_exit(0);
  }
  ASSERT_TRUE(Eventually([&] { return d->Metric("kvstore_waiters") == 1.0; }));
  EXPECT_EQ(d->Metric("kvstore_connected_clients"), 1.0);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  EXPECT_TRUE(Eventually([&] { return d->Metric("kvstore_waiters") == 0.0; }));
  EXPECT_TRUE(Eventually([&] { return d->Metric("kvstore_connected_clients") == 0.0; }));
  // The key inserted later is still there for the next taker.
  auto c = ConnectTo(*d);
  std::vector<Key> keys{TestKey(99)};
  ASSERT_OK(c->Insert(keys[0], RandomBytes(1000, 9)));
  auto got = c->DropSelect(keys, 1s);
  ASSERT_OK(got);
  EXPECT_EQ((*got)[0].value, RandomBytes(1000, 9));
}

TEST(LookupBuffer, TtlExpiryFreesMemory) {
  auto d = StartDaemon({"--ttl", "1s"});
  ASSERT_NE(d, nullptr);
  auto c = ConnectTo(*d);
  for (uint32_t i = 0; i < 4; ++i) ASSERT_OK(c->Insert(TestKey(i), RandomBytes(1 << 20, i)));
  InsertOptions longer;
  longer.ttl = std::chrono::minutes(10);
  ASSERT_OK(c->Insert(TestKey(100), RandomBytes(1 << 20, 100), longer));
  EXPECT_EQ(d->Metric("kvstore_stored_bytes", {{"tier", "host"}}), 5.0 * (1 << 20));
  ASSERT_TRUE(Eventually([&] { return d->Metric("kvstore_entries", {{"tier", "host"}}) == 1.0; }));
  EXPECT_EQ(d->Metric("kvstore_stored_bytes", {{"tier", "host"}}), 1.0 * (1 << 20));
  EXPECT_EQ(d->Metric("kvstore_ttl_expired_total"), 4.0);
  auto stats = c->Stats();
  ASSERT_OK(stats);
  EXPECT_EQ(stats->ttl_expired, 4u);
  EXPECT_LE(stats->tiers[0].used_bytes, 2u << 20);
  std::vector<Key> keys{TestKey(100)};
  EXPECT_EQ(*c->MatchPrefix(keys), 1u);
}

TEST(LookupBuffer, InsertBeyondMemoryIsRefusedAndStoredDataStaysIntact) {
  auto d = StartDaemon({"--memory", "8MiB"});
  ASSERT_NE(d, nullptr);
  auto c = ConnectTo(*d);
  std::vector<Key> stored;
  Status refused;
  for (uint32_t i = 0; i < 32; ++i) {
    auto r = c->Insert(TestKey(i), RandomBytes(1 << 20, i));
    if (!r.ok()) {
      refused = r.status();
      break;
    }
    stored.push_back(TestKey(i));
  }
  EXPECT_EQ(refused.code(), StatusCode::kResourceExhausted) << refused.ToString();
  EXPECT_GE(stored.size(), 6u);
  EXPECT_LE(stored.size(), 8u);
  for (size_t i = 0; i < stored.size(); ++i) {
    std::vector<Key> one{stored[i]};
    auto got = c->Select(one);
    ASSERT_OK(got);
    EXPECT_EQ((*got)[0].value, RandomBytes(1 << 20, i)) << "entry " << i;
  }
  EXPECT_GE(d->Metric("kvstore_refused_inserts_total").value_or(0), 1.0);
  // Taking one frees room for another.
  std::vector<Key> first{stored[0]};
  ASSERT_OK(c->DropSelect(first, 1s));
  ASSERT_OK(c->Insert(TestKey(1000), RandomBytes(1 << 20, 1000)));
}

}  // namespace
}  // namespace kvstore::testing

namespace kvstore::testing {
namespace {

TEST(LookupBuffer, RegisteredRegionsMoveBytesWithoutCopiesAndCheckBounds) {
  auto d = StartDaemon();
  ASSERT_NE(d, nullptr);
  auto c = ConnectTo(*d);
  // One registered arena holds two blocks' worth of KV on each side.
  auto src = RandomBytes(2 * 65536, 42);
  std::vector<std::byte> dst(2 * 65536);
  auto src_region = c->RegisterRegion(src);
  auto dst_region = c->RegisterRegion(dst);
  ASSERT_OK(src_region);
  ASSERT_OK(dst_region);
  std::vector<Key> keys{TestKey(1), TestKey(2)};
  for (uint64_t i = 0; i < 2; ++i) {
    ASSERT_OK(c->InsertFromRegion(keys[i], {*src_region, i * 65536, 65536}));
  }
  // Destinations swapped: block 1 lands first.
  std::vector<RegionSlice> where{{*dst_region, 65536, 65536}, {*dst_region, 0, 65536}};
  auto got = c->DropSelectIntoRegions(keys, where, std::chrono::seconds(2));
  ASSERT_OK(got);
  EXPECT_TRUE(std::equal(dst.begin(), dst.begin() + 65536, src.begin() + 65536));
  EXPECT_TRUE(std::equal(dst.begin() + 65536, dst.end(), src.begin()));
  auto stats = c->TransferStats();
  EXPECT_EQ(stats.registered_transfers, 3u);
  EXPECT_EQ(stats.staged_transfers, 0u);

  // Out of bounds, overflowing, unknown region: refused before anything moves.
  EXPECT_EQ(c->InsertFromRegion(keys[0], {*src_region, 65537, 65536}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(c->InsertFromRegion(keys[0], {*src_region, UINT64_MAX - 1, 4}).status().code(),
            StatusCode::kInvalidArgument);
  ASSERT_OK(c->UnregisterRegion(*src_region));
  EXPECT_EQ(c->InsertFromRegion(keys[0], {*src_region, 0, 16}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(c->UnregisterRegion(*src_region).code(), StatusCode::kNotFound);
  EXPECT_EQ(*c->MatchPrefix(keys), 0u);
}

}  // namespace
}  // namespace kvstore::testing
