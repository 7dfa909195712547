// One-sided transfers against the real daemon. With the local transport the
// store reads an insert's value out of memory the client shared (a memfd from
// AllocateSharedRegion, passed over the Unix socket) and writes a select's
// values into it (transport.h); the LookupBuffer contract is the same as over
// TCP, and a transfer that fails leaves nothing half-stored and loses nothing.
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

TEST_F(OneSided, SharedRegionsMoveExactBytesBothWays) {
  auto value = RandomBytes((3 << 20) + 17, 1);
  auto rs = local_->AllocateSharedRegion(value.size());
  auto rd = local_->AllocateSharedRegion(4 << 20);
  ASSERT_OK(rs);
  ASSERT_OK(rd);
  std::memcpy(rs->memory.data(), value.data(), value.size());
  std::span<std::byte> dst = rd->memory;
  Key k = TestKey(1);
  auto ins = local_->InsertFromRegion(k, {rs->region, 0, value.size()});
  ASSERT_OK(ins);
  EXPECT_TRUE(*ins);
  std::vector<Key> keys{k};
  RegionSlice out{rd->region, 100, value.size()};
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
  // Plain spans inside shared memory go one-sided too; spans of other memory
  // go in the socket's frames (the store cannot reach them).
  Key k2 = TestKey(2);
  ASSERT_OK(local_->Insert(k2, std::span<const std::byte>(rs->memory.data(), value.size())));
  std::span<std::byte> inside = dst.subspan(0, value.size());
  std::vector<Key> keys2{k2};
  ASSERT_OK(local_->SelectInto(keys2, std::span(&inside, 1)));
  EXPECT_EQ(std::memcmp(inside.data(), value.data(), value.size()), 0);
  EXPECT_EQ(local_->TransferStats().one_sided_transfers, 4u);
  std::vector<std::byte> plain(value.size());
  std::span<std::byte> plain_span(plain);
  ASSERT_OK(local_->SelectInto(keys2, std::span(&plain_span, 1)));
  EXPECT_EQ(plain, value);
  EXPECT_EQ(local_->TransferStats().one_sided_transfers, 4u);
  EXPECT_EQ(Stored(k2), 1u);  // select leaves it
}

TEST_F(OneSided, UnregisteredRegionsAreWithdrawnSoAConnectionNeverFillsUp) {
  // More allocate/use/unregister cycles on one connection than the store keeps
  // regions per connection (transport::RegionTable::kMaxRegions = 4096).
  ClientOptions o;
  o.address = daemon_->address();
  o.transport = "local";
  o.max_connections = 1;
  auto c = Client::Connect(o);
  ASSERT_OK(c);
  for (uint32_t i = 0; i < 4200; ++i) {
    auto r = (*c)->AllocateSharedRegion(4096);
    ASSERT_OK(r);
    std::memcpy(r->memory.data(), &i, sizeof(i));
    Key k = TestKey(100000 + i);
    auto ins = (*c)->InsertFromRegion(k, {r->region, 0, 4096});
    ASSERT_OK(ins) << "cycle " << i << ": " << ins.status().ToString();
    ASSERT_OK((*c)->UnregisterRegion(r->region));
  }
  EXPECT_EQ((*c)->TransferStats().one_sided_transfers, 4200u);
  std::vector<Key> last{TestKey(100000 + 4199)};
  auto got = tcp_->Select(last);
  ASSERT_OK(got);
  uint32_t seen = 0;
  std::memcpy(&seen, (*got)[0].value.data(), sizeof(seen));
  EXPECT_EQ(seen, 4199u);
}

TEST_F(OneSided, WaiterOnOneTransportGetsWhatTheOtherInserted) {
  auto value = RandomBytes(1 << 20, 2);
  auto rd = local_->AllocateSharedRegion(value.size());
  ASSERT_OK(rd);
  Key k = TestKey(3);
  auto waiting = std::async(std::launch::async, [&] {
    std::vector<Key> keys{k};
    RegionSlice out{rd->region, 0, value.size()};
    return local_->DropSelectIntoRegions(keys, std::span(&out, 1), 20s);
  });
  ASSERT_TRUE(Eventually([&] { return daemon_->Metric("kvstore_waiters") == 1.0; }));
  ASSERT_OK(tcp_->Insert(k, value));
  ASSERT_OK(waiting.get());
  EXPECT_EQ(std::memcmp(rd->memory.data(), value.data(), value.size()), 0);
  // And the other way: inserted by pull, taken over the socket.
  Key k2 = TestKey(4);
  ASSERT_OK(local_->Insert(k2, std::span<const std::byte>(rd->memory)));
  std::vector<Key> keys2{k2};
  auto got = tcp_->DropSelect(keys2, 5s);
  ASSERT_OK(got);
  EXPECT_EQ((*got)[0].value, value);
}

TEST_F(OneSided, ClientUnmappingItsViewNeverReachesTheStore) {
  // The store maps the memfd itself: the client unmapping (or freeing) its own
  // view changes nothing for the store, and no copy can fault in the daemon.
  auto r = local_->AllocateSharedRegion(1 << 20);
  ASSERT_OK(r);
  auto value = RandomBytes(1 << 20, 5);
  std::memcpy(r->memory.data(), value.data(), value.size());
  Key warm = TestKey(50);  // the region is announced (mapped by the store) on first use
  ASSERT_OK(local_->InsertFromRegion(warm, {r->region, 0, 4096}));
  InsertOptions o;
  o.checksum = ValueChecksum(value);
  ASSERT_EQ(::munmap(r->memory.data(), r->memory.size()), 0);
  Key k = TestKey(5);
  ASSERT_OK(local_->InsertFromRegion(k, {r->region, 0, value.size()}, o));
  std::vector<Key> keys{k};
  auto got = tcp_->Select(keys);
  ASSERT_OK(got);
  EXPECT_EQ((*got)[0].value, value);
  // Remap something at the same place so the Client's teardown unmaps only what it owns.
  void* again = ::mmap(r->memory.data(), r->memory.size(), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  ASSERT_NE(again, MAP_FAILED);
}

TEST_F(OneSided, FailedPushLeavesTheEntryForTheNextTaker) {
  auto value = RandomBytes(1 << 20, 6);
  Key k = TestKey(6);
  ASSERT_OK(tcp_->Insert(k, value));
  // A destination the connection never shared: refused before anything moves.
  RawConn raw("unix:" + daemon_->data_dir() + "/kvstored.sock");
  ASSERT_TRUE(raw.connected());
  capnp::MallocMessageBuilder hello;
  auto h = hello.initRoot<wire::Request>();
  h.setId(1);
  h.initHello().setProtocolVersion(wire::PROTOCOL_VERSION);
  h.getHello().setSharedMemory(true);
  ASSERT_TRUE(raw.SendFrame(hello, {}));
  auto hr = raw.ReadReply();
  ASSERT_TRUE(hr.has_value());
  ASSERT_EQ(hr->code, wire::Code::OK) << hr->message;
  capnp::MallocMessageBuilder m;
  auto r = m.initRoot<wire::Request>();
  r.setId(2);
  auto sel = r.initDropSelect();
  sel.initKeys(1).set(0, KeyToWire(k));
  sel.setTimeoutMs(1000);
  auto d = sel.initDestinations(1)[0];
  d.setRegion(77);
  d.setLength(value.size());
  ASSERT_TRUE(raw.SendFrame(m, {}));
  auto got = raw.ReadReply();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->code, wire::Code::INVALID_ARGUMENT) << got->message;
  std::vector<Key> keys{k};
  auto again = tcp_->DropSelect(keys, 2s);
  ASSERT_OK(again);
  EXPECT_EQ((*again)[0].value, value);
}

TEST_F(OneSided, DestinationTooSmallIsRefusedAndTheEntryStays) {
  Key k = TestKey(7);
  ASSERT_OK(tcp_->Insert(k, RandomBytes(5000, 7)));
  auto r = local_->AllocateSharedRegion(4000);
  ASSERT_OK(r);
  std::vector<Key> keys{k};
  RegionSlice out{r->region, 0, 4000};
  auto got = local_->DropSelectIntoRegions(keys, std::span(&out, 1), 2s);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument) << got.status().ToString();
  EXPECT_EQ(Stored(k), 1u);
}

TEST_F(OneSided, ValueThatDoesNotMatchItsChecksumIsRefused) {
  // What the store reads must be what the client hashed: a buffer rewritten
  // mid-insert (here: a wrong checksum) is refused and nothing is stored.
  auto value = RandomBytes(100000, 8);
  auto r = local_->AllocateSharedRegion(value.size());
  ASSERT_OK(r);
  std::memcpy(r->memory.data(), value.data(), value.size());
  InsertOptions o;
  o.checksum = ValueChecksum(value) ^ 1;
  Key k = TestKey(8);
  auto ins = local_->InsertFromRegion(k, {r->region, 0, value.size()}, o);
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
    auto r = c->AllocateSharedRegion(1 << 20);
    if (!r.ok()) ::_exit(4);
    std::vector<Key> keys{k};
    RegionSlice out{r->region, 0, 1 << 20};
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
  RawConn raw("unix:" + daemon_->data_dir() + "/kvstored.sock");
  ASSERT_TRUE(raw.connected());
  capnp::MallocMessageBuilder hello;
  auto h = hello.initRoot<wire::Request>();
  h.setId(1);
  auto hh = h.initHello();
  hh.setProtocolVersion(wire::PROTOCOL_VERSION);
  hh.setSharedMemory(true);
  ASSERT_TRUE(raw.SendFrame(hello, {}));
  auto hello_reply = raw.ReadReply();
  ASSERT_TRUE(hello_reply.has_value());
  ASSERT_EQ(hello_reply->code, wire::Code::OK) << hello_reply->message;
  auto value = RandomBytes(3 << 20, 21);
  auto shm = transport::SharedMemory::Allocate(value.size(), "test");
  ASSERT_OK(shm);
  std::memcpy((*shm)->bytes().data(), value.data(), value.size());
  capnp::MallocMessageBuilder reg;
  auto rr = reg.initRoot<wire::Request>();
  rr.setId(2);
  rr.initRegisterRegion().setId(1);
  rr.getRegisterRegion().setSharedFd(true);
  ASSERT_TRUE(raw.SendFrameWithFd(reg, (*shm)->fd()));
  auto reg_reply = raw.ReadReply();
  ASSERT_TRUE(reg_reply.has_value());
  ASSERT_EQ(reg_reply->code, wire::Code::OK) << reg_reply->message;
  capnp::MallocMessageBuilder ins;
  auto i = ins.initRoot<wire::Request>();
  i.setId(3);
  auto insert = i.initInsert();
  Key k = TestKey(21);
  insert.setKey(KeyToWire(k));
  insert.initMeta().setSize(value.size());
  insert.setChecksumByStore(true);
  auto src = insert.initSource();
  src.setRegion(1);
  src.setLength(value.size());
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
