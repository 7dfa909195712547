#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <numeric>
#include <vector>

#include <gtest/gtest.h>

#include "kvstore/rdma/device.h"
#include "kvstore/transport/rdma_transport.h"
#include "kvstore/transport/transport.h"

namespace kvstore::transport {
namespace {

std::vector<std::byte> Pattern(size_t n, uint8_t seed) {
  std::vector<std::byte> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = std::byte(static_cast<uint8_t>(i * 31 + seed));
  return v;
}

// What an rdma client's exporter sends: address, rkey, length.
std::vector<std::byte> Describe(std::span<std::byte> memory) {
  return rdma::RemoteRegion{reinterpret_cast<uintptr_t>(memory.data()), 0, memory.size()}.Encode();
}

// A memfd as the client library makes it, mapped on the store's side.
std::shared_ptr<SharedMapping> MapShared(const SharedMemory& shm) {
  auto m = SharedMapping::Map(::dup(shm.fd()), RegionTable::kMaxSharedBytes);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return m.ok() ? std::move(m).value() : nullptr;
}

// Runs a RemoteAccess call and returns what its completion said.
Status Await(const std::function<void(Done)>& call) {
  std::optional<Status> got;
  call([&](Status s) { got = std::move(s); });
  EXPECT_TRUE(got.has_value()) << "the local transport completes inline";
  return got.value_or(Status::Internal("no completion"));
}

TEST(TransportNames, ParseAndPrintRoundTrip) {
  for (Kind k : {Kind::kTcp, Kind::kLocal, Kind::kRdma}) {
    auto parsed = ParseKind(KindName(k));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, k);
  }
  EXPECT_EQ(ParseKind("udp").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(*ParsePreference("auto"), Preference::kAuto);
  EXPECT_EQ(*ParsePreference("local"), Preference::kLocal);
  EXPECT_EQ(ParsePreference("shm").status().code(), StatusCode::kInvalidArgument);
}

TEST(RegionTable, ResolvesInsideRegionsAndRefusesEverythingElse) {
  std::vector<std::byte> buf(4096);
  auto d = Describe(buf);
  RegionTable t(Kind::kRdma);
  ASSERT_TRUE(t.Add(7, d).ok());
  auto a = t.Resolve({7, 100, 200, {}});
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->addr.addr, reinterpret_cast<uintptr_t>(buf.data()) + 100);
  // Out of bounds, overflowing, empty, unknown region, id 0 refused.
  EXPECT_EQ(t.Resolve({7, 4000, 200, {}}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(t.Resolve({7, UINT64_MAX - 10, 100, {}}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(t.Resolve({7, 0, 0, {}}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(t.Resolve({8, 0, 10, {}}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(t.Add(0, d).code(), StatusCode::kInvalidArgument);
  // A malformed descriptor is refused and leaves the table as it was.
  std::vector<std::byte> garbage(24, std::byte{0xff});
  EXPECT_EQ(t.Add(9, garbage).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(t.size(), 1u);
  // One-off regions ride in the request.
  auto inline_addr = t.Resolve({0, 8, 16, d});
  ASSERT_TRUE(inline_addr.ok());
  EXPECT_EQ(inline_addr->addr.addr, reinterpret_cast<uintptr_t>(buf.data()) + 8);
  EXPECT_EQ(t.Resolve({0, 0, 16, garbage}).status().code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(t.Remove(7).ok());
  EXPECT_EQ(t.Remove(7).code(), StatusCode::kNotFound);
  EXPECT_EQ(t.Resolve({7, 0, 10, {}}).status().code(), StatusCode::kInvalidArgument);
}

TEST(LocalTransport, TablesOfSharedMemoryTakeNoAddressesAndNoOneOffRegions) {
  std::vector<std::byte> buf(4096);
  RegionTable t(Kind::kLocal);
  EXPECT_EQ(t.Add(1, Describe(buf)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(t.Resolve({0, 0, 16, Describe(buf)}).status().code(), StatusCode::kInvalidArgument);
  auto shm = SharedMemory::Allocate(8192, "test");
  ASSERT_TRUE(shm.ok()) << shm.status().ToString();
  auto m = MapShared(**shm);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->size(), 8192u);
  EXPECT_EQ(t.AddShared(0, m).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(t.AddShared(3, m).ok());
  auto r = t.Resolve({3, 100, 200, {}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->addr.addr, 100u);  // an offset into the mapping, never an address
  EXPECT_EQ(r->shared, m);
  EXPECT_EQ(t.Resolve({3, 8000, 200, {}}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(t.Resolve({3, UINT64_MAX - 1, 4, {}}).status().code(), StatusCode::kInvalidArgument);
  // An rdma table takes no shared memory.
  RegionTable rt(Kind::kRdma);
  EXPECT_EQ(rt.AddShared(3, m).code(), StatusCode::kInvalidArgument);
}

TEST(LocalTransport, CopiesStayInsideTheSharedMapping) {
  auto shm = SharedMemory::Allocate(1 << 20, "test");
  ASSERT_TRUE(shm.ok()) << shm.status().ToString();
  auto client = (*shm)->bytes();
  auto value = Pattern(1 << 16, 5);
  std::memcpy(client.data() + 4096, value.data(), value.size());
  auto m = MapShared(**shm);
  ASSERT_NE(m, nullptr);
  auto access = MakeLocalAccess();
  std::vector<std::byte> slot(value.size());
  RemoteRange at{{4096, 0}, m};
  ASSERT_TRUE(Await([&](Done d) { access->Read(at, slot, std::move(d)); }).ok());
  EXPECT_EQ(slot, value);
  // The store's writes land in the client's view of the same pages.
  auto other = Pattern(1 << 16, 9);
  ASSERT_TRUE(Await([&](Done d) {
                access->Write(other, RemoteRange{{0, 0}, m}, std::move(d));
              }).ok());
  EXPECT_EQ(std::memcmp(client.data(), other.data(), other.size()), 0);
  // Past the end, or with no mapping at all: refused, nothing copied.
  std::vector<std::byte> big(2 << 20);
  EXPECT_EQ(Await([&](Done d) { access->Read(at, big, std::move(d)); }).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Await([&](Done d) {
              access->Write(other, RemoteRange{{(1 << 20) - 10, 0}, m}, std::move(d));
            }).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Await([&](Done d) {
              access->Read(RemoteRange{{reinterpret_cast<uintptr_t>(slot.data()), 0}, nullptr},
                           slot, std::move(d));
            }).code(),
            StatusCode::kInvalidArgument);
}

TEST(LocalTransport, OnlySealedMemfdsAreMapped) {
  int unsealed = ::memfd_create("unsealed", MFD_CLOEXEC);
  ASSERT_GE(unsealed, 0);
  ASSERT_EQ(::ftruncate(unsealed, 4096), 0);
  EXPECT_EQ(SharedMapping::Map(unsealed, 1 << 20).status().code(), StatusCode::kInvalidArgument);
  FILE* tmp = std::tmpfile();
  ASSERT_NE(tmp, nullptr);
  ASSERT_EQ(::ftruncate(fileno(tmp), 4096), 0);
  EXPECT_EQ(SharedMapping::Map(::dup(fileno(tmp)), 1 << 20).status().code(),
            StatusCode::kInvalidArgument);
  std::fclose(tmp);
  auto shm = SharedMemory::Allocate(1 << 20, "test");
  ASSERT_TRUE(shm.ok());
  EXPECT_EQ(SharedMapping::Map(::dup((*shm)->fd()), 4096).status().code(),
            StatusCode::kInvalidArgument);  // larger than allowed
}

TEST(LocalTransport, FdsTravelWithTheirFrameOverAUnixSocket) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  auto shm = SharedMemory::Allocate(4096, "test");
  ASSERT_TRUE(shm.ok());
  char msg[] = "frame";
  iovec iov{msg, sizeof(msg)};
  ASSERT_EQ(SendWithFd(sv[0], &iov, 1, (*shm)->fd()), static_cast<ssize_t>(sizeof(msg)));
  char got[sizeof(msg)] = {};
  std::vector<int> fds;
  bool truncated = true;
  ASSERT_EQ(ReceiveWithFds(sv[1], got, sizeof(got), &fds, &truncated),
            static_cast<ssize_t>(sizeof(msg)));
  EXPECT_FALSE(truncated);
  ASSERT_EQ(fds.size(), 1u);
  EXPECT_STREQ(got, "frame");
  auto m = SharedMapping::Map(fds[0], 1 << 20);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  (*shm)->bytes()[7] = std::byte{42};
  EXPECT_EQ((*(*m)->Slice(7, 1))[0], std::byte{42});
  ::close(sv[0]);
  ::close(sv[1]);
}

// The rdma transport end to end on one device: a client endpoint and the
// store's side connected to each other, READ and WRITE against a registered
// buffer. Needs an RDMA device (soft-RoCE is enough).
TEST(RdmaTransport, ReadAndWriteThroughALoopbackQueuePair) {
  std::string why;
  if (!rdma::RdmaDevicesPresent(&why)) GTEST_SKIP() << "needs an RDMA device: " << why;
  auto opened = rdma::RdmaDevice::Open();
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  std::shared_ptr<rdma::RdmaDevice> device(std::move(opened).value());
  auto client = RdmaClientEndpoint::Create(device);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  // The store's memory: one registration, as the daemon registers its arena.
  std::vector<std::byte> slot(2 << 20);
  auto store_mr = device->RegisterMemory(slot.data(), slot.size());
  ASSERT_TRUE(store_mr.ok()) << store_mr.status().ToString();
  uint32_t lkey = (*store_mr)->lkey();
  std::deque<std::function<void()>> queue;
  auto access = AcceptRdma(
      *device, (*client)->HelloParams(),
      [&](const void* p, size_t n) -> Result<uint32_t> {
        auto* b = static_cast<const std::byte*>(p);
        if (b < slot.data() || b + n > slot.data() + slot.size()) {
          return Status::InvalidArgument("not in the registered slot");
        }
        return lkey;
      },
      [&](std::function<void()> fn) { queue.push_back(std::move(fn)); });
  ASSERT_TRUE(access.ok()) << access.status().ToString();
  ASSERT_TRUE((*client)->Connect((*access)->HelloReplyParams()).ok());
  // The client's buffer, exported as a client does.
  auto value = Pattern(slot.size(), 3);
  auto exported = MakeRdmaExporter(device)->Export(value);
  ASSERT_TRUE(exported.ok()) << exported.status().ToString();
  RegionTable table(Kind::kRdma);
  ASSERT_TRUE(table.Add(1, exported->descriptor).ok());
  auto run = [&](const std::function<void(Done)>& call) {
    std::optional<Status> got;
    call([&](Status s) { got = std::move(s); });
    for (int i = 0; !got && i < 1000000; ++i) {
      if (queue.empty()) continue;
      auto fn = std::move(queue.front());
      queue.pop_front();
      fn();
    }
    return got.value_or(Status::Timeout("no completion"));
  };
  auto src = table.Resolve({1, 0, value.size(), {}});
  ASSERT_TRUE(src.ok());
  ASSERT_TRUE(run([&](Done d) { (*access)->Read(*src, slot, std::move(d)); }).ok());
  EXPECT_EQ(slot, value);
  std::fill(value.begin(), value.end(), std::byte{0});
  ASSERT_TRUE(run([&](Done d) { (*access)->Write(slot, *src, std::move(d)); }).ok());
  EXPECT_EQ(value, Pattern(slot.size(), 3));
  // A store buffer outside any registration fails the transfer, not the process.
  std::vector<std::byte> unregistered(64);
  Status bad = run([&](Done d) { (*access)->Read(*src, unregistered, std::move(d)); });
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvstore::transport
