// One-sided transfers against the real daemon. With the local transport the
// store reads an insert's value out of the client's memory and writes a
// select's values into it (transport.h); the LookupBuffer contract is the same
// as over TCP, and a transfer that fails leaves nothing half-stored and loses
// nothing.
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <future>

#include <capnp/message.h>

#include "kvstore/transport/transport.h"
#include "kvstore/wire_convert.h"

#include "raw_conn.h"
#include "test_util.h"

namespace kvstore::testing {
namespace {

using namespace std::chrono_literals;

std::unique_ptr<Client> ConnectWith(const TestDaemon& d, const std::string& transport) {
  ClientOptions o;
  o.address = d.address();
  o.transport = transport;
  auto c = Client::Connect(o);
  EXPECT_OK(c);
  return c.ok() ? std::move(c).value() : nullptr;
}

// Anonymous pages the test can unmap while the client still names them.
struct Pages {
  explicit Pages(size_t n) : size(n) {
    data = static_cast<std::byte*>(
        ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  }
  ~Pages() {
    if (mapped) ::munmap(data, size);
  }
  void Unmap() {
    ::munmap(data, size);
    mapped = false;
  }
  std::span<std::byte> span() { return {data, size}; }
  std::byte* data;
  size_t size;
  bool mapped = true;
};

class OneSided : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_ = StartDaemon();
    ASSERT_NE(daemon_, nullptr);
    local_ = ConnectWith(*daemon_, "local");
    tcp_ = ConnectWith(*daemon_, "tcp");
    ASSERT_NE(local_, nullptr);
    ASSERT_NE(tcp_, nullptr);
  }
  size_t Stored(const Key& k) {
    std::vector<Key> keys{k};
    auto n = tcp_->MatchPrefix(keys);
    EXPECT_OK(n);
    return n.ok() ? *n : 99;
  }
  std::unique_ptr<TestDaemon> daemon_;
  std::unique_ptr<Client> local_;
  std::unique_ptr<Client> tcp_;
};

TEST_F(OneSided, LocalIsNegotiatedOnThisHostAndTcpWhenAsked) {
  EXPECT_EQ(local_->TransferStats().transport, "local");
  EXPECT_EQ(tcp_->TransferStats().transport, "tcp");
  EXPECT_NE(daemon_->Log().find("bulk transport: local"), std::string::npos) << daemon_->Log();
}

TEST_F(OneSided, RegisteredRegionsMoveExactBytesBothWays) {
  auto value = RandomBytes((3 << 20) + 17, 1);
  std::vector<std::byte> src = value, dst((4 << 20), std::byte{0});
  auto rs = local_->RegisterRegion(src);
  auto rd = local_->RegisterRegion(dst);
  ASSERT_OK(rs);
  ASSERT_OK(rd);
  Key k = TestKey(1);
  auto ins = local_->InsertFromRegion(k, {*rs, 0, src.size()});
  ASSERT_OK(ins);
  EXPECT_TRUE(*ins);
  std::vector<Key> keys{k};
  RegionSlice out{*rd, 100, value.size()};
  auto got = local_->DropSelectIntoRegions(keys, std::span(&out, 1), 5s);
  ASSERT_OK(got);
  EXPECT_EQ((*got)[0].meta.size, value.size());
  EXPECT_EQ((*got)[0].meta.checksum, ValueChecksum(value));
  EXPECT_EQ(std::memcmp(dst.data() + 100, value.data(), value.size()), 0);
  EXPECT_EQ(dst[99], std::byte{0});  // nothing written outside the destination
  EXPECT_EQ(Stored(k), 0u);          // taken: gone
  auto stats = local_->TransferStats();
  EXPECT_EQ(stats.one_sided_transfers, 2u);
  EXPECT_EQ(stats.registered_on_the_fly, 0u);
  // Plain spans work too: registered for the one call, and counted as such.
  Key k2 = TestKey(2);
  ASSERT_OK(local_->Insert(k2, value));
  std::vector<std::byte> plain(value.size());
  std::span<std::byte> plain_span(plain);
  std::vector<Key> keys2{k2};
  ASSERT_OK(local_->SelectInto(keys2, std::span(&plain_span, 1)));
  EXPECT_EQ(plain, value);
  EXPECT_EQ(local_->TransferStats().registered_on_the_fly, 2u);
  EXPECT_EQ(Stored(k2), 1u);  // select leaves it
}

TEST_F(OneSided, UnregisteredRegionsAreWithdrawnSoAConnectionNeverFillsUp) {
  // More register/use/unregister cycles on one connection than the store keeps
  // regions per connection (transport::RegionTable::kMaxRegions = 4096).
  ClientOptions o;
  o.address = daemon_->address();
  o.transport = "local";
  o.max_connections = 1;
  auto c = Client::Connect(o);
  ASSERT_OK(c);
  std::vector<std::byte> buf(4096);
  for (uint32_t i = 0; i < 4200; ++i) {
    std::memcpy(buf.data(), &i, sizeof(i));
    auto r = (*c)->RegisterRegion(buf);
    ASSERT_OK(r);
    Key k = TestKey(100000 + i);
    auto ins = (*c)->InsertFromRegion(k, {*r, 0, buf.size()});
    ASSERT_OK(ins) << "cycle " << i << ": " << ins.status().ToString();
    ASSERT_OK((*c)->UnregisterRegion(*r));
  }
  std::vector<Key> last{TestKey(100000 + 4199)};
  auto got = tcp_->Select(last);
  ASSERT_OK(got);
  uint32_t seen = 0;
  std::memcpy(&seen, (*got)[0].value.data(), sizeof(seen));
  EXPECT_EQ(seen, 4199u);
}

TEST_F(OneSided, WaiterOnOneTransportGetsWhatTheOtherInserted) {
  auto value = RandomBytes(1 << 20, 2);
  std::vector<std::byte> dst(value.size());
  auto rd = local_->RegisterRegion(dst);
  ASSERT_OK(rd);
  Key k = TestKey(3);
  auto waiting = std::async(std::launch::async, [&] {
    std::vector<Key> keys{k};
    RegionSlice out{*rd, 0, dst.size()};
    return local_->DropSelectIntoRegions(keys, std::span(&out, 1), 20s);
  });
  ASSERT_TRUE(Eventually([&] { return daemon_->Metric("kvstore_waiters") == 1.0; }));
  ASSERT_OK(tcp_->Insert(k, value));
  ASSERT_OK(waiting.get());
  EXPECT_EQ(dst, value);
  // And the other way: inserted by pull, taken over the socket.
  Key k2 = TestKey(4);
  ASSERT_OK(local_->Insert(k2, value));
  std::vector<Key> keys2{k2};
  auto got = tcp_->DropSelect(keys2, 5s);
  ASSERT_OK(got);
  EXPECT_EQ((*got)[0].value, value);
}

TEST_F(OneSided, PullFromUnmappedMemoryStoresNothing) {
  Pages pages(1 << 20);
  ASSERT_NE(pages.data, MAP_FAILED);
  std::memset(pages.data, 7, pages.size);
  auto r = local_->RegisterRegion(pages.span());
  ASSERT_OK(r);
  InsertOptions o;  // checksum given: the client itself never touches the bytes
  o.checksum = ValueChecksum(pages.span());
  pages.Unmap();  // the engine freed the buffer it still names
  Key k = TestKey(5);
  auto ins = local_->InsertFromRegion(k, {*r, 0, pages.size}, o);
  ASSERT_FALSE(ins.ok());
  EXPECT_EQ(ins.status().code(), StatusCode::kInvalidArgument) << ins.status().ToString();
  EXPECT_NE(ins.status().message().find("not mapped"), std::string::npos) << ins.status().message();
  EXPECT_EQ(Stored(k), 0u);
  // The connection and the daemon go on.
  ASSERT_OK(local_->Insert(k, RandomBytes(1000, 5)));
  EXPECT_EQ(Stored(k), 1u);
}

TEST_F(OneSided, FailedPushLeavesTheEntryForTheNextTaker) {
  auto value = RandomBytes(1 << 20, 6);
  Key k = TestKey(6);
  ASSERT_OK(tcp_->Insert(k, value));
  Pages pages(1 << 20);
  ASSERT_NE(pages.data, MAP_FAILED);
  auto r = local_->RegisterRegion(pages.span());
  ASSERT_OK(r);
  pages.Unmap();
  std::vector<Key> keys{k};
  RegionSlice out{*r, 0, pages.size};
  auto got = local_->DropSelectIntoRegions(keys, std::span(&out, 1), 2s);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("stay stored"), std::string::npos)
      << got.status().message();
  auto again = tcp_->DropSelect(keys, 2s);
  ASSERT_OK(again);
  EXPECT_EQ((*again)[0].value, value);
}

TEST_F(OneSided, DestinationTooSmallIsRefusedAndTheEntryStays) {
  Key k = TestKey(7);
  ASSERT_OK(tcp_->Insert(k, RandomBytes(5000, 7)));
  std::vector<std::byte> small(4000);
  auto r = local_->RegisterRegion(small);
  ASSERT_OK(r);
  std::vector<Key> keys{k};
  RegionSlice out{*r, 0, small.size()};
  auto got = local_->DropSelectIntoRegions(keys, std::span(&out, 1), 2s);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument) << got.status().ToString();
  EXPECT_EQ(Stored(k), 1u);
}

TEST_F(OneSided, ValueThatDoesNotMatchItsChecksumIsRefused) {
  // What the store reads must be what the client hashed: a buffer rewritten
  // mid-insert (here: a wrong checksum) is refused and nothing is stored.
  auto value = RandomBytes(100000, 8);
  InsertOptions o;
  o.checksum = ValueChecksum(value) ^ 1;
  Key k = TestKey(8);
  auto ins = local_->Insert(k, value, o);
  ASSERT_FALSE(ins.ok());
  EXPECT_EQ(ins.status().code(), StatusCode::kDataLoss) << ins.status().ToString();
  EXPECT_EQ(Stored(k), 0u);
}

TEST_F(OneSided, ClientKilledWhileWaitingLosesNothing) {
  Key k = TestKey(9);
  pid_t child = ::fork();
  if (child == 0) {
    auto c = ConnectWith(*daemon_, "local");
    if (c == nullptr) ::_exit(3);
    std::vector<std::byte> dst(1 << 20);
    auto r = c->RegisterRegion(dst);
    if (!r.ok()) ::_exit(4);
    std::vector<Key> keys{k};
    RegionSlice out{*r, 0, dst.size()};
    (void)c->DropSelectIntoRegions(keys, std::span(&out, 1), std::chrono::minutes(5));
    ::_exit(0);
  }
  ASSERT_TRUE(Eventually([&] { return daemon_->Metric("kvstore_waiters") == 1.0; }));
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  // Whether the daemon sees the closed connection or the dead process first,
  // the value inserted now is there for the next taker.
  auto value = RandomBytes(1 << 20, 9);
  ASSERT_OK(tcp_->Insert(k, value));
  std::vector<Key> keys{k};
  auto got = tcp_->DropSelect(keys, 5s);
  ASSERT_OK(got);
  EXPECT_EQ((*got)[0].value, value);
  EXPECT_TRUE(Eventually([&] { return daemon_->Metric("kvstore_waiters") == 0.0; }));
}

TEST_F(OneSided, OneSidedRequestsOnATcpConnectionAreRefused) {
  RawConn raw(daemon_->address());  // no hello, no offer: tcp
  capnp::MallocMessageBuilder reg;
  auto r = reg.initRoot<wire::Request>();
  r.setId(1);
  r.initRegisterRegion().setId(1);
  ASSERT_TRUE(raw.SendFrame(reg, {}));
  auto reply = raw.ReadReply();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->code, wire::Code::INVALID_ARGUMENT);
  EXPECT_NE(reply->message.find("tcp"), std::string::npos) << reply->message;
  capnp::MallocMessageBuilder ins;
  auto i = ins.initRoot<wire::Request>();
  i.setId(2);
  auto insert = i.initInsert();
  insert.setKey(KeyToWire(TestKey(10)));
  insert.initMeta().setSize(4096);
  insert.initSource().setLength(4096);
  ASSERT_TRUE(raw.SendFrame(ins, {}));
  auto reply2 = raw.ReadReply();
  ASSERT_TRUE(reply2.has_value());
  EXPECT_EQ(reply2->code, wire::Code::INVALID_ARGUMENT);
  EXPECT_EQ(Stored(TestKey(10)), 0u);
  ASSERT_OK(tcp_->Ping());
}

TEST_F(OneSided, GpuRegionsAreNeverTouchedOnTheCpuAndNeedRdma) {
  // Unmapped pages stand in for GPU memory: a CPU access would crash the test.
  Pages gpu(1 << 20);
  ASSERT_NE(gpu.data, MAP_FAILED);
  gpu.Unmap();
  Key k = TestKey(20);
  for (Client* c : {local_.get(), tcp_.get()}) {
    auto r = c->RegisterDeviceRegion(gpu.span());
    ASSERT_OK(r);
    auto ins = c->InsertFromRegion(k, {*r, 0, gpu.size});
    ASSERT_FALSE(ins.ok());
    EXPECT_EQ(ins.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(ins.status().message().find("rdma"), std::string::npos) << ins.status().message();
  }
  EXPECT_EQ(Stored(k), 0u);
  auto value = RandomBytes(1000, 20);
  ASSERT_OK(tcp_->Insert(k, value));
  auto r = local_->RegisterDeviceRegion(gpu.span());
  ASSERT_OK(r);
  std::vector<Key> keys{k};
  RegionSlice out{*r, 0, gpu.size};
  auto got = local_->DropSelectIntoRegions(keys, std::span(&out, 1), 1s);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Stored(k), 1u);  // nothing was taken
}

TEST_F(OneSided, StoreHashesWhatItPullsWhenTheClientCannot) {
  // What a GPU client sends over rdma, here over local from a raw connection:
  // no checksum, checksumByStore set; the store records the hash of what it read.
  RawConn raw(daemon_->address());
  transport::LocalOffer offer;
  auto offer_bytes = offer.Encode();
  capnp::MallocMessageBuilder hello;
  auto h = hello.initRoot<wire::Request>();
  h.setId(1);
  auto hh = h.initHello();
  hh.setProtocolVersion(wire::PROTOCOL_VERSION);
  hh.setLocalOffer({reinterpret_cast<const kj::byte*>(offer_bytes.data()), offer_bytes.size()});
  ASSERT_TRUE(raw.SendFrame(hello, {}));
  auto hello_reply = raw.ReadReply();
  ASSERT_TRUE(hello_reply.has_value());
  ASSERT_EQ(hello_reply->code, wire::Code::OK) << hello_reply->message;
  auto value = RandomBytes(3 << 20, 21);
  auto exported = transport::MakeLocalExporter()->Export(value);
  ASSERT_OK(exported);
  capnp::MallocMessageBuilder ins;
  auto i = ins.initRoot<wire::Request>();
  i.setId(2);
  auto insert = i.initInsert();
  Key k = TestKey(21);
  insert.setKey(KeyToWire(k));
  insert.initMeta().setSize(value.size());
  insert.setChecksumByStore(true);
  auto src = insert.initSource();
  src.setLength(value.size());
  src.setDescriptor({reinterpret_cast<const kj::byte*>(exported->descriptor.data()),
                     exported->descriptor.size()});
  ASSERT_TRUE(raw.SendFrame(ins, {}));
  auto reply = raw.ReadReply();
  ASSERT_TRUE(reply.has_value());
  ASSERT_EQ(reply->code, wire::Code::OK) << reply->message;
  std::vector<Key> keys{k};
  auto got = tcp_->Select(keys);  // over tcp the client verifies the recorded checksum
  ASSERT_OK(got);
  EXPECT_EQ((*got)[0].value, value);
  EXPECT_EQ((*got)[0].meta.checksum, ValueChecksum(value));
}

TEST(OneSidedOff, NoLocalTransportFallsBackToTcpAndSaysWhy) {
  auto d = StartDaemon({"--no-local-transport"});
  ASSERT_NE(d, nullptr);
  auto c = ConnectWith(*d, "local");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->TransferStats().transport, "tcp");
  EXPECT_NE(d->Log().find("--no-local-transport"), std::string::npos) << d->Log();
  // Everything still works, over the socket.
  auto value = RandomBytes(300000, 11);
  std::vector<std::byte> dst(value.size());
  auto r = c->RegisterRegion(dst);
  ASSERT_OK(r);
  Key k = TestKey(11);
  ASSERT_OK(c->Insert(k, value));
  std::vector<Key> keys{k};
  RegionSlice out{*r, 0, dst.size()};
  ASSERT_OK(c->DropSelectIntoRegions(keys, std::span(&out, 1), 2s));
  EXPECT_EQ(dst, value);
  EXPECT_EQ(c->TransferStats().one_sided_transfers, 0u);
}

}  // namespace
}  // namespace kvstore::testing
