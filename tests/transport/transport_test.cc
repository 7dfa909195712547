#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <numeric>
#include <vector>

#include <gtest/gtest.h>

#include "status_matchers.h"

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

std::vector<std::byte> Describe(std::span<std::byte> memory) {
  auto e = MakeLocalExporter()->Export(memory);
  EXPECT_OK(e);
  return e.ok() ? e->descriptor : std::vector<std::byte>{};
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
    ASSERT_OK(parsed);
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
  RegionTable t;
  ASSERT_OK(t.Add(7, d));
  auto a = t.Resolve({7, 100, 200, {}});
  ASSERT_OK(a);
  EXPECT_EQ(a->addr, reinterpret_cast<uintptr_t>(buf.data()) + 100);
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
  ASSERT_OK(inline_addr);
  EXPECT_EQ(inline_addr->addr, reinterpret_cast<uintptr_t>(buf.data()) + 8);
  EXPECT_EQ(t.Resolve({0, 0, 16, garbage}).status().code(), StatusCode::kInvalidArgument);
  ASSERT_OK(t.Remove(7));
  EXPECT_EQ(t.Remove(7).code(), StatusCode::kNotFound);
  EXPECT_EQ(t.Resolve({7, 0, 10, {}}).status().code(), StatusCode::kInvalidArgument);
}

TEST(LocalTransport, OwnOfferIsAcceptedAndReadsAndWritesThisProcess) {
  LocalOffer offer;
  auto access = AcceptLocalOffer(offer.Encode());
  ASSERT_OK(access);
  EXPECT_EQ((*access)->kind(), Kind::kLocal);
  auto source = Pattern(3 << 20, 5);
  std::vector<std::byte> slot(source.size());
  rdma::RemoteAddress src{reinterpret_cast<uintptr_t>(source.data()), 0};
  ASSERT_OK(Await([&](Done d) { (*access)->Read(src, slot, std::move(d)); }));
  EXPECT_EQ(slot, source);
  std::vector<std::byte> dest(source.size());
  rdma::RemoteAddress dst{reinterpret_cast<uintptr_t>(dest.data()), 0};
  ASSERT_OK(Await([&](Done d) { (*access)->Write(slot, dst, std::move(d)); }));
  EXPECT_EQ(dest, source);
}

TEST(LocalTransport, MalformedOrForgedOffersAreRefused) {
  EXPECT_EQ(AcceptLocalOffer(std::vector<std::byte>(5)).status().code(),
            StatusCode::kInvalidArgument);
  LocalOffer offer;
  auto bytes = offer.Encode();
  bytes[20] ^= std::byte{1};  // the nonce it claims is not what its memory holds
  auto forged = AcceptLocalOffer(bytes);
  EXPECT_EQ(forged.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(forged.status().message().find("did not check out"), std::string::npos)
      << forged.status().message();
}

TEST(LocalTransport, UnmappedClientMemoryIsAnErrorNotACrash) {
  LocalOffer offer;
  auto access = AcceptLocalOffer(offer.Encode());
  ASSERT_OK(access);
  size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  void* m = ::mmap(nullptr, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(m, MAP_FAILED);
  ASSERT_EQ(::munmap(m, 4 * page), 0);
  std::vector<std::byte> slot(4 * page);
  rdma::RemoteAddress gone{reinterpret_cast<uintptr_t>(m), 0};
  Status r = Await([&](Done d) { (*access)->Read(gone, slot, std::move(d)); });
  EXPECT_EQ(r.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.message().find("not mapped"), std::string::npos) << r.message();
  Status w = Await([&](Done d) { (*access)->Write(slot, gone, std::move(d)); });
  EXPECT_EQ(w.code(), StatusCode::kInvalidArgument);
}

// A child makes an offer and sends it over a pipe; the parent accepts it.
TEST(LocalTransport, ExitedClientIsNeverReadAgain) {
  int offer_pipe[2], go_pipe[2];
  ASSERT_EQ(::pipe(offer_pipe), 0);
  ASSERT_EQ(::pipe(go_pipe), 0);
  auto value = Pattern(64 << 10, 9);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    LocalOffer offer;
    auto bytes = offer.Encode();
    uint64_t addr = reinterpret_cast<uintptr_t>(value.data());
    (void)!::write(offer_pipe[1], bytes.data(), bytes.size());
    (void)!::write(offer_pipe[1], &addr, sizeof(addr));
    char c;
    (void)!::read(go_pipe[0], &c, 1);  // stay alive until told
    _exit(0);
  }
  std::vector<std::byte> bytes(32);
  uint64_t addr = 0;
  ASSERT_EQ(::read(offer_pipe[0], bytes.data(), bytes.size()), 32);
  ASSERT_EQ(::read(offer_pipe[0], &addr, sizeof(addr)), static_cast<ssize_t>(sizeof(addr)));
  auto access = AcceptLocalOffer(bytes);
  ASSERT_OK(access);
  std::vector<std::byte> slot(value.size());
  ASSERT_OK(Await([&](Done d) { (*access)->Read({addr, 0}, slot, std::move(d)); }));
  EXPECT_EQ(slot, value);  // the child's copy of the pattern
  ASSERT_EQ(::write(go_pipe[1], "x", 1), 1);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  Status after = Await([&](Done d) { (*access)->Read({addr, 0}, slot, std::move(d)); });
  EXPECT_EQ(after.code(), StatusCode::kUnavailable);
  EXPECT_NE(after.message().find("exited"), std::string::npos) << after.message();
  // And an offer from a process that is gone is refused at Hello.
  EXPECT_EQ(AcceptLocalOffer(bytes).status().code(), StatusCode::kUnavailable);
  for (int fd : {offer_pipe[0], offer_pipe[1], go_pipe[0], go_pipe[1]}) ::close(fd);
}

// The rdma transport end to end on one device: a client endpoint and the
// store's side connected to each other, READ and WRITE against a registered
// buffer. Needs an RDMA device (soft-RoCE is enough).
TEST(RdmaTransport, ReadAndWriteThroughALoopbackQueuePair) {
  std::string why;
  if (!rdma::RdmaDevicesPresent(&why)) GTEST_SKIP() << "needs an RDMA device: " << why;
  auto opened = rdma::RdmaDevice::Open();
  ASSERT_OK(opened);
  std::shared_ptr<rdma::RdmaDevice> device(std::move(opened).value());
  auto client = RdmaClientEndpoint::Create(device);
  ASSERT_OK(client);
  // The store's memory: one registration, as the daemon registers its arena.
  std::vector<std::byte> slot(2 << 20);
  auto store_mr = device->RegisterMemory(slot.data(), slot.size());
  ASSERT_OK(store_mr);
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
  ASSERT_OK(access);
  ASSERT_OK((*client)->Connect((*access)->HelloReplyParams()));
  // The client's buffer, exported as a client does.
  auto value = Pattern(slot.size(), 3);
  auto exported = MakeRdmaExporter(device)->Export(value);
  ASSERT_OK(exported);
  RegionTable table;
  ASSERT_OK(table.Add(1, exported->descriptor));
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
  ASSERT_OK(src);
  ASSERT_OK(run([&](Done d) { (*access)->Read(*src, slot, std::move(d)); }));
  EXPECT_EQ(slot, value);
  std::fill(value.begin(), value.end(), std::byte{0});
  ASSERT_OK(run([&](Done d) { (*access)->Write(slot, *src, std::move(d)); }));
  EXPECT_EQ(value, Pattern(slot.size(), 3));
  // A store buffer outside any registration fails the transfer, not the process.
  std::vector<std::byte> unregistered(64);
  Status bad = run([&](Done d) { (*access)->Read(*src, unregistered, std::move(d)); });
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvstore::transport
