// insertMany over the local (one-sided) transport: values in memory the client
// shared are named by region and offset (InsertItem.source) and pulled by the
// store, not sent in the frame; a source the connection cannot name (another
// connection's region, outside its region, wrong length, or on tcp) refuses
// the whole batch with nothing stored.
#include <cstring>

#include <capnp/message.h>
#include <xxhash.h>

#include "kvstore/transport/transport.h"
#include "kvstore/wire_convert.h"

#include "raw_conn.h"
#include "test_util.h"

namespace kvstore::testing {
namespace {

using namespace std::chrono_literals;

double Pulls(const TestDaemon& d, const std::string& result = "ok") {
  return d
      .Metric("kvstore_one_sided_transfers_total",
              {{"transport", "local"}, {"direction", "pull"}, {"result", result}})
      .value_or(0);
}

class InsertManyOneSided : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_ = StartDaemon({"--max-value", "1MiB"});
    ASSERT_NE(daemon_, nullptr);
    tcp_ = ConnectWith(*daemon_, "tcp");
    ASSERT_NE(tcp_, nullptr);
  }
  size_t Stored(const Key& k) { return StoredCount(*tcp_, k); }
  // A raw connection on the Unix socket that negotiated the local transport.
  std::unique_ptr<RawConn> LocalRaw() {
    auto raw = std::make_unique<RawConn>("unix:" + daemon_->data_dir() + "/kvstored.sock");
    EXPECT_TRUE(raw->connected());
    capnp::MallocMessageBuilder hello;
    auto h = hello.initRoot<wire::Request>();
    h.setId(1);
    h.initHello().setProtocolVersion(wire::PROTOCOL_VERSION);
    h.getHello().setSharedMemory(true);
    EXPECT_TRUE(raw->SendFrame(hello, {}));
    auto reply = raw->ReadReply();
    EXPECT_TRUE(reply.has_value());
    if (reply) EXPECT_EQ(reply->code, wire::Code::OK) << reply->message;
    return raw;
  }
  // Announces `shm` as region `id` on `raw`.
  static void Announce(RawConn& raw, const transport::SharedMemory& shm, uint32_t id) {
    capnp::MallocMessageBuilder reg;
    auto r = reg.initRoot<wire::Request>();
    r.setId(2);
    r.initRegisterRegion().setId(id);
    r.getRegisterRegion().setSharedFd(true);
    ASSERT_TRUE(raw.SendFrameWithFd(reg, shm.fd()));
    auto reply = raw.ReadReply();
    ASSERT_TRUE(reply.has_value());
    ASSERT_EQ(reply->code, wire::Code::OK) << reply->message;
  }
  // One insert_many item: its value at [offset, +size) of region `region`
  // (region 0: the value follows in the frame).
  struct RawItem {
    Key key;
    std::span<const std::byte> value;
    uint32_t region = 0;
    uint64_t offset = 0;
    uint64_t source_length = 0;  // 0: value.size()
  };
  static std::optional<RawConn::Reply> SendMany(RawConn& raw, const std::vector<RawItem>& items) {
    capnp::MallocMessageBuilder m;
    auto req = m.initRoot<wire::Request>();
    req.setId(3);
    auto list = req.initInsertMany().initItems(static_cast<unsigned>(items.size()));
    std::vector<std::byte> bulk;
    for (size_t i = 0; i < items.size(); ++i) {
      auto out = list[static_cast<unsigned>(i)];
      out.setKey(KeyToWire(items[i].key));
      auto meta = out.initMeta();
      meta.setSize(items[i].value.size());
      meta.setChecksum(XXH3_64bits(items[i].value.data(), items[i].value.size()));
      if (items[i].region == 0) {
        bulk.insert(bulk.end(), items[i].value.begin(), items[i].value.end());
        continue;
      }
      auto src = out.initSource();
      src.setRegion(items[i].region);
      src.setOffset(items[i].offset);
      src.setLength(items[i].source_length != 0 ? items[i].source_length : items[i].value.size());
    }
    if (!raw.SendFrame(m, bulk)) return std::nullopt;
    return raw.ReadReply();
  }

  std::unique_ptr<TestDaemon> daemon_;
  std::unique_ptr<Client> tcp_;
};

TEST_F(InsertManyOneSided, SharedValuesArePulledByTheStoreNotSentInTheFrame) {
  auto local = ConnectWith(*daemon_, "local");
  ASSERT_NE(local, nullptr);
  ASSERT_EQ(local->TransferStats().transport, "local");
  constexpr size_t kBlocks = 64, kBlock = 1024;
  auto region = local->AllocateSharedRegion(kBlocks * kBlock);
  ASSERT_OK(region);
  std::vector<InsertItem> items;
  for (size_t i = 0; i < kBlocks; ++i) {
    auto v = RandomBytes(kBlock, i);
    std::memcpy(region->memory.data() + i * kBlock, v.data(), kBlock);
    items.push_back(
        {TestKey(static_cast<uint32_t>(i)), region->memory.subspan(i * kBlock, kBlock), {}});
  }
  auto plain = RandomBytes(3000, 99);  // ordinary memory: travels in the frame
  items.push_back({TestKey(1000), plain, {}});
  const double pulls_before = Pulls(*daemon_);
  auto res = local->InsertMany(items);
  ASSERT_OK(res);
  ASSERT_EQ(res->size(), items.size());
  for (auto& r : *res) {
    ASSERT_OK(r);
    EXPECT_TRUE(*r);
  }
  EXPECT_EQ(Pulls(*daemon_) - pulls_before, double(kBlocks));
  EXPECT_EQ(local->TransferStats().one_sided_transfers, kBlocks);
  EXPECT_EQ(daemon_->Metric("kvstore_requests_total", {{"op", "insert_many"}, {"result", "ok"}}),
            1.0);
  std::vector<Key> keys;
  for (const auto& it : items) keys.push_back(it.key);
  auto got = tcp_->DropSelect(keys, 0ms);
  ASSERT_OK(got);
  for (size_t i = 0; i < items.size(); ++i) {
    EXPECT_TRUE(std::equal(items[i].value.begin(), items[i].value.end(), (*got)[i].value.begin(),
                           (*got)[i].value.end()))
        << "item " << i;
  }
}

TEST_F(InsertManyOneSided, PulledAndFramedItemsMixInOneRequest) {
  auto raw = LocalRaw();
  auto shm = transport::SharedMemory::Allocate(16 << 10, "test");
  ASSERT_OK(shm);
  auto a = RandomBytes(5000, 1), b = RandomBytes(700, 2), c = RandomBytes(9000, 3);
  std::memcpy((*shm)->bytes().data(), a.data(), a.size());
  std::memcpy((*shm)->bytes().data() + 6000, c.data(), c.size());
  Announce(*raw, **shm, 1);
  // The frame carries only b's 700 bytes: a and c are pulled.
  auto reply = SendMany(*raw, {{TestKey(1), a, 1, 0}, {TestKey(2), b}, {TestKey(3), c, 1, 6000}});
  ASSERT_TRUE(reply.has_value());
  ASSERT_EQ(reply->code, wire::Code::OK) << reply->message;
  std::vector<Key> keys{TestKey(1), TestKey(2), TestKey(3)};
  auto got = tcp_->Select(keys);
  ASSERT_OK(got);
  EXPECT_EQ((*got)[0].value, a);
  EXPECT_EQ((*got)[1].value, b);
  EXPECT_EQ((*got)[2].value, c);
  EXPECT_EQ(Pulls(*daemon_), 2.0);
}

TEST_F(InsertManyOneSided, ASourceTheConnectionCannotNameRefusesTheBatch) {
  auto raw = LocalRaw();
  auto shm = transport::SharedMemory::Allocate(8 << 10, "test");
  ASSERT_OK(shm);
  auto v = RandomBytes(1024, 4);
  std::memcpy((*shm)->bytes().data(), v.data(), v.size());
  Announce(*raw, **shm, 1);
  struct Case {
    const char* what;
    RawItem bad;
    const char* says;
  };
  const Case cases[] = {
      {"past the region's end", {TestKey(11), v, 1, (8 << 10) - 100}, "outside"},
      {"offset beyond the region", {TestKey(11), v, 1, uint64_t{1} << 62}, "outside"},
      {"a region never announced here", {TestKey(11), v, 77}, "not registered"},
      {"length not the value's size", {TestKey(11), v, 1, 0, 512}, "source of 512"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    auto reply = SendMany(*raw, {{TestKey(10), v, 1, 0}, c.bad, {TestKey(12), v}});
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->code, wire::Code::INVALID_ARGUMENT);
    EXPECT_NE(reply->message.find("item 1"), std::string::npos) << reply->message;
    EXPECT_NE(reply->message.find(c.says), std::string::npos) << reply->message;
    EXPECT_NE(reply->message.find("nothing was stored"), std::string::npos) << reply->message;
    for (uint32_t k : {10u, 11u, 12u}) EXPECT_EQ(Stored(TestKey(k)), 0u) << k;
  }
  // Another connection (another tenant's process) cannot name this one's region.
  auto other = LocalRaw();
  auto reply = SendMany(*other, {{TestKey(13), v, 1, 0}});
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->code, wire::Code::INVALID_ARGUMENT);
  EXPECT_NE(reply->message.find("not registered"), std::string::npos) << reply->message;
  EXPECT_EQ(Stored(TestKey(13)), 0u);
  // Over tcp nothing can be pulled.
  RawConn tcp(daemon_->address());
  ASSERT_TRUE(tcp.connected());
  reply = SendMany(tcp, {{TestKey(14), v, 1, 0}});
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->code, wire::Code::INVALID_ARGUMENT);
  EXPECT_NE(reply->message.find("tcp"), std::string::npos) << reply->message;
  EXPECT_EQ(Stored(TestKey(14)), 0u);
  EXPECT_EQ(Pulls(*daemon_), 0.0);
  // The connection still works after each refusal.
  reply = SendMany(*raw, {{TestKey(15), v, 1, 0}});
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->code, wire::Code::OK) << reply->message;
  EXPECT_EQ(Stored(TestKey(15)), 1u);
}

TEST_F(InsertManyOneSided, PulledValuesCountAgainstTheValueCapOfOneRequest) {
  // --max-value 1MiB: two pulled values of 600 KiB are over it together.
  auto raw = LocalRaw();
  auto shm = transport::SharedMemory::Allocate(2 << 20, "test");
  ASSERT_OK(shm);
  auto v = RandomBytes(600 << 10, 5);
  std::memcpy((*shm)->bytes().data(), v.data(), v.size());
  std::memcpy((*shm)->bytes().data() + v.size(), v.data(), v.size());
  Announce(*raw, **shm, 1);
  auto reply = SendMany(*raw, {{TestKey(20), v, 1, 0}, {TestKey(21), v, 1, v.size()}});
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->code, wire::Code::INVALID_ARGUMENT);
  EXPECT_NE(reply->message.find("--max-value"), std::string::npos) << reply->message;
  EXPECT_EQ(Stored(TestKey(20)), 0u);
  EXPECT_EQ(Stored(TestKey(21)), 0u);
  // The client splits such a batch: both stored, both pulled.
  auto local = ConnectWith(*daemon_, "local");
  ASSERT_NE(local, nullptr);
  auto region = local->AllocateSharedRegion(2 * v.size());
  ASSERT_OK(region);
  std::memcpy(region->memory.data(), v.data(), v.size());
  std::memcpy(region->memory.data() + v.size(), v.data(), v.size());
  std::vector<InsertItem> items{{TestKey(20), region->memory.subspan(0, v.size()), {}},
                                {TestKey(21), region->memory.subspan(v.size(), v.size()), {}}};
  auto res = local->InsertMany(items);
  ASSERT_OK(res);
  for (auto& r : *res) ASSERT_OK(r);
  EXPECT_EQ(Stored(TestKey(20)), 1u);
  EXPECT_EQ(Stored(TestKey(21)), 1u);
  EXPECT_EQ(Pulls(*daemon_), 2.0);
}

}  // namespace
}  // namespace kvstore::testing
