// insertMany: many values in one request, one result per key (schema/kvstore.capnp,
// InsertManyRequest). Values arrive byte-exact, wake waiting drop_selects, and
// a refused batch (over --max-keys-per-request, malformed) stores nothing
// while what was stored before stays.
#include <fstream>
#include <future>

#include <capnp/message.h>
#include <xxhash.h>

#include "kvstore/wire_convert.h"

#include "raw_conn.h"
#include "test_util.h"

namespace kvstore::testing {
namespace {

using namespace std::chrono_literals;

std::vector<InsertItem> Items(const std::vector<Key>& keys,
                              const std::vector<std::vector<std::byte>>& values) {
  std::vector<InsertItem> items;
  for (size_t i = 0; i < keys.size(); ++i) items.push_back({keys[i], values[i], std::nullopt});
  return items;
}

size_t Stored(Client& c, const Key& k) {
  std::vector<Key> one{k};
  auto n = c.MatchPrefix(one);
  return n.ok() ? *n : 99;
}

TEST(InsertMany, ManyKeysArriveByteExactThroughDropSelect) {
  auto d = StartDaemon();
  ASSERT_NE(d, nullptr);
  auto c = ConnectTo(*d);
  ASSERT_NE(c, nullptr);
  std::vector<Key> keys;
  std::vector<std::vector<std::byte>> values;
  const size_t sizes[] = {1, 64, 4096, 100000, 17};
  for (uint32_t i = 0; i < 40; ++i) {
    keys.push_back(TestKey(i * 10));
    values.push_back(RandomBytes(sizes[i % 5], i));
  }
  auto res = c->InsertMany(Items(keys, values), {.layout = "test/v1"});
  ASSERT_OK(res);
  ASSERT_EQ(res->size(), keys.size());
  for (auto& r : *res) {
    ASSERT_OK(r);
    EXPECT_TRUE(*r);
  }
  auto got = c->DropSelect(keys, 0ms);
  ASSERT_OK(got);
  ASSERT_EQ(got->size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ((*got)[i].value, values[i]) << "item " << i;
    EXPECT_EQ((*got)[i].meta.layout, "test/v1");
  }
  EXPECT_EQ(d->Metric("kvstore_requests_total", {{"op", "insert_many"}, {"result", "ok"}}), 1.0);
}

TEST(InsertMany, TheIndexMemoryMetricsCountEntriesAndStayCompact) {
  auto d = StartDaemon();
  ASSERT_NE(d, nullptr);
  auto c = ConnectTo(*d);
  ASSERT_NE(c, nullptr);
  std::vector<Key> keys;
  std::vector<std::vector<std::byte>> values;
  constexpr uint32_t kKeys = 100000;
  for (uint32_t i = 0; i < kKeys; ++i) {
    keys.push_back(TestKey(1000000 + i));
    values.push_back(RandomBytes(64, i));
  }
  // One call: the client splits it into requests whose keys fit a frame.
  auto res = c->InsertMany(Items(keys, values));
  ASSERT_OK(res);
  ASSERT_EQ(res->size(), keys.size());
  for (auto& r : *res) ASSERT_OK(r);
  EXPECT_GE(d->Metric("kvstore_requests_total", {{"op", "insert_many"}, {"result", "ok"}}), 2.0);
  const double entries = d->Metric("kvstore_index_bytes", {{"part", "entries"}}).value_or(0);
  const double table = d->Metric("kvstore_index_bytes", {{"part", "table"}}).value_or(0);
  const double per = d->Metric("kvstore_index_bytes_per_entry").value_or(0);
  // A 32-byte key and its metadata per entry, a hash-table slot or two: more
  // than the key alone, and near the 100 bytes an entry may cost (the pool
  // grows in chunks and the table in powers of two: at 100 k entries that
  // slack is still a few percent).
  EXPECT_GE(entries, kKeys * 32.0) << d->ScrapeMetrics();
  EXPECT_GT(table, kKeys * 4.0) << d->ScrapeMetrics();
  EXPECT_GT(per, 40.0);
  EXPECT_LT(per, 120.0);
  EXPECT_EQ(d->Metric("kvstore_host_fragmentation_ratio"), 0.0);  // 64 B values, 64 B slots
  for (size_t begin = 0; begin < keys.size(); begin += 50000) {   // under the key cap
    auto removed = c->Remove(std::span(keys).subspan(begin, 50000));
    ASSERT_OK(removed);
    EXPECT_EQ(*removed, 50000u);
  }
  EXPECT_EQ(d->Metric("kvstore_index_bytes_per_entry"), 0.0);  // nothing held
}

TEST(InsertMany, KeysThatDoNotFitAFrameAreRefusedByTheClientAndTheConnectionLives) {
  auto d = StartDaemon();
  ASSERT_NE(d, nullptr);
  auto c = ConnectTo(*d, /*max_connections=*/1);
  ASSERT_NE(c, nullptr);
  std::vector<Key> keys;
  for (uint32_t i = 0; i < 200000; ++i) keys.push_back(TestKey(5000000 + i));
  ASSERT_OK(c->Ping());
  const auto connections = d->Metric("kvstore_connections_total");
  ASSERT_TRUE(connections.has_value());
  auto removed = c->Remove(keys);  // ~8 MB of keys: over the 4 MiB control limit
  ASSERT_EQ(removed.status().code(), StatusCode::kInvalidArgument) << removed.status().ToString();
  EXPECT_NE(removed.status().message().find("pass fewer keys per call"), std::string::npos)
      << removed.status().ToString();
  ASSERT_OK(c->Ping());
  EXPECT_EQ(d->Metric("kvstore_connections_total"), connections);  // on the same connection
}

TEST(InsertMany, AWaitingDropSelectReceivesItsKey) {
  auto d = StartDaemon();
  ASSERT_NE(d, nullptr);
  auto producer = ConnectTo(*d);
  auto consumer = ConnectTo(*d);
  ASSERT_NE(producer, nullptr);
  ASSERT_NE(consumer, nullptr);
  std::vector<Key> keys{TestKey(1), TestKey(11), TestKey(21)};
  std::vector<std::vector<std::byte>> values{RandomBytes(300, 1), RandomBytes(5000, 2),
                                             RandomBytes(70, 3)};
  auto waiting = std::async(std::launch::async, [&] {
    std::vector<Key> one{keys[1]};
    return consumer->DropSelect(one, 60s);
  });
  ASSERT_TRUE(Eventually([&] { return d->Metric("kvstore_waiters") == 1.0; }));
  ASSERT_OK(producer->InsertMany(Items(keys, values)));
  auto got = waiting.get();
  ASSERT_OK(got);
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].value, values[1]);
}

TEST(InsertMany, OverTheKeyCapIsRefusedWithNothingStored) {
  auto d = StartDaemon({"--max-keys-per-request", "8"});
  ASSERT_NE(d, nullptr);
  auto c = ConnectTo(*d);
  ASSERT_NE(c, nullptr);
  std::vector<Key> keys;
  std::vector<std::vector<std::byte>> values;
  for (uint32_t i = 0; i < 9; ++i) {
    keys.push_back(TestKey(i * 10));
    values.push_back(RandomBytes(1000, i));
  }
  auto res = c->InsertMany(Items(keys, values));
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(res.status().message().find("--max-keys-per-request"), std::string::npos)
      << res.status().ToString();
  for (const Key& k : keys) EXPECT_EQ(Stored(*c, k), 0u);
  EXPECT_EQ(d->Metric("kvstore_limit_refusals_total", {{"limit", "keys_per_request"}}), 1.0);
  // At the cap it goes through, on the same daemon.
  keys.pop_back();
  values.pop_back();
  ASSERT_OK(c->InsertMany(Items(keys, values)));
  for (const Key& k : keys) EXPECT_EQ(Stored(*c, k), 1u);
}

TEST(InsertMany, AStoredOrRepeatedKeyAnswersAlreadyPresentAndKeepsTheFirstCopy) {
  auto d = StartDaemon();
  ASSERT_NE(d, nullptr);
  auto c = ConnectTo(*d);
  ASSERT_NE(c, nullptr);
  const Key stored = TestKey(1), fresh = TestKey(11);
  const auto before = RandomBytes(500, 1);
  ASSERT_OK(c->Insert(stored, before));
  std::vector<Key> keys{stored, fresh, fresh};
  std::vector<std::vector<std::byte>> values{RandomBytes(500, 2), RandomBytes(600, 3),
                                             RandomBytes(700, 4)};
  auto res = c->InsertMany(Items(keys, values));
  ASSERT_OK(res);
  ASSERT_EQ(res->size(), 3u);
  ASSERT_OK((*res)[0]);
  ASSERT_OK((*res)[1]);
  ASSERT_OK((*res)[2]);
  EXPECT_FALSE(*(*res)[0]);
  EXPECT_TRUE(*(*res)[1]);
  EXPECT_FALSE(*(*res)[2]);
  std::vector<Key> both{stored, fresh};
  auto got = c->Select(both);
  ASSERT_OK(got);
  EXPECT_EQ((*got)[0].value, before);
  EXPECT_EQ((*got)[1].value, values[1]);
}

TEST(InsertMany, SizesNotMatchingTheBulkAreRefusedWithoutLosingOtherEntries) {
  auto d = StartDaemon();
  ASSERT_NE(d, nullptr);
  auto c = ConnectTo(*d);
  ASSERT_NE(c, nullptr);
  const Key kept = TestKey(1);
  const auto kept_value = RandomBytes(800, 1);
  ASSERT_OK(c->Insert(kept, kept_value));
  RawConn raw(d->address());
  ASSERT_TRUE(raw.connected());
  const auto bulk = RandomBytes(90, 2);
  const Key a = TestKey(11), b = TestKey(21);
  capnp::MallocMessageBuilder msg;
  auto req = msg.initRoot<wire::Request>();
  req.setId(7);
  auto items = req.initInsertMany().initItems(2);
  for (unsigned i = 0; i < 2; ++i) {
    items[i].setKey(KeyToWire(i == 0 ? a : b));
    auto m = items[i].initMeta();
    m.setSize(50);  // 100 declared, 90 sent
    m.setChecksum(XXH3_64bits(bulk.data() + 45 * i, 45));
  }
  ASSERT_TRUE(raw.SendFrame(msg, bulk));
  auto reply = raw.ReadReply();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->id, 7u);
  EXPECT_EQ(reply->code, wire::Code::INVALID_ARGUMENT);
  EXPECT_NE(reply->message.find("back to back"), std::string::npos) << reply->message;
  // The stream stays in step: the next request on the same connection is answered.
  capnp::MallocMessageBuilder ping;
  auto p = ping.initRoot<wire::Request>();
  p.setId(8);
  p.setPing();
  ASSERT_TRUE(raw.SendFrame(ping, {}));
  auto pong = raw.ReadReply();
  ASSERT_TRUE(pong.has_value());
  EXPECT_EQ(pong->id, 8u);
  EXPECT_EQ(pong->code, wire::Code::OK);
  EXPECT_EQ(Stored(*c, a), 0u);
  EXPECT_EQ(Stored(*c, b), 0u);
  std::vector<Key> one{kept};
  auto got = c->Select(one);
  ASSERT_OK(got);
  EXPECT_EQ((*got)[0].value, kept_value);
}

TEST(InsertMany, AWrongChecksumFailsOnlyItsKey) {
  auto d = StartDaemon();
  ASSERT_NE(d, nullptr);
  auto c = ConnectTo(*d);
  ASSERT_NE(c, nullptr);
  std::vector<Key> keys{TestKey(1), TestKey(11)};
  std::vector<std::vector<std::byte>> values{RandomBytes(100, 1), RandomBytes(100, 2)};
  auto items = Items(keys, values);
  items[0].checksum = XXH3_64bits(values[0].data(), values[0].size()) ^ 1;
  auto res = c->InsertMany(items);
  ASSERT_OK(res);
  EXPECT_EQ((*res)[0].status().code(), StatusCode::kDataLoss) << (*res)[0].status().ToString();
  ASSERT_OK((*res)[1]);
  EXPECT_EQ(Stored(*c, keys[0]), 0u);
  EXPECT_EQ(Stored(*c, keys[1]), 1u);
}

TEST(InsertMany, ABatchOverTheNamespaceQuotaStoresWhatFitsAndNamesTheQuota) {
  TempDir dir("kvstore-insert-many");
  const std::string tokens = dir.path() + "/tokens";
  const char* token = "token-of-engine-q-0123456789";
  std::ofstream(tokens) << "engine-q team-q engine " << token << "\n"
                        << "quota team-q bytes=1MiB\n";
  auto d = StartDaemon({"--tokens-file", tokens});
  ASSERT_NE(d, nullptr);
  ClientOptions o;
  o.address = d->address();
  o.token = token;
  o.transport = TestTransport();
  auto c = Client::Connect(o);
  ASSERT_OK(c);
  std::vector<Key> keys{TestKey(1), TestKey(11), TestKey(21)};
  std::vector<std::vector<std::byte>> values{RandomBytes(400 << 10, 1), RandomBytes(400 << 10, 2),
                                             RandomBytes(400 << 10, 3)};
  auto res = (*c)->InsertMany(Items(keys, values));
  ASSERT_OK(res);
  ASSERT_EQ(res->size(), 3u);
  ASSERT_OK((*res)[0]);
  ASSERT_OK((*res)[1]);
  EXPECT_EQ((*res)[2].status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE((*res)[2].status().message().find("team-q"), std::string::npos)
      << (*res)[2].status().ToString();
  EXPECT_NE((*res)[2].status().message().find("quota"), std::string::npos)
      << (*res)[2].status().ToString();
  std::vector<Key> first{keys[0], keys[1]};
  auto got = (*c)->Select(first);
  ASSERT_OK(got);
  EXPECT_EQ((*got)[0].value, values[0]);
  EXPECT_EQ((*got)[1].value, values[1]);
  EXPECT_EQ(Stored(**c, keys[2]), 0u);
}

}  // namespace
}  // namespace kvstore::testing
