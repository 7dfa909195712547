#include <gtest/gtest.h>

#include "status_matchers.h"

#include <cstdint>
#include <limits>
#include <random>

#include "kvstore/rdma/remote_region.h"
#include "kvstore/rdma/transfer_plan.h"

namespace kvstore::rdma {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

TEST(RemoteRegion, RoundTrip) {
  RemoteRegion r{0x7f0012345000, 0xdeadbeef, 1 << 30};
  auto back = RemoteRegion::Decode(r.Encode());
  ASSERT_OK(back);
  EXPECT_EQ(*back, r);
}

TEST(RemoteRegion, DecodeRejectsGarbage) {
  RemoteRegion r{4096, 7, 4096};
  auto b = r.Encode();
  EXPECT_FALSE(RemoteRegion::Decode(std::span(b).first(23)).ok());
  auto v = b;
  v[0] = std::byte{9};
  EXPECT_FALSE(RemoteRegion::Decode(v).ok());
  auto res = b;
  res[2] = std::byte{1};
  EXPECT_FALSE(RemoteRegion::Decode(res).ok());
  EXPECT_FALSE(RemoteRegion::Decode(RemoteRegion{4096, 7, 0}.Encode()).ok());
  EXPECT_FALSE(RemoteRegion::Decode(RemoteRegion{kMax - 10, 7, 100}.Encode()).ok());

  std::mt19937_64 rng(7);
  for (int i = 0; i < 50000; ++i) {
    std::vector<std::byte> g(i % 3 == 0 ? rng() % 40 : kRemoteRegionEncodedSize);
    for (auto& x : g) x = static_cast<std::byte>(rng());
    if (i % 2 == 0 && g.size() == kRemoteRegionEncodedSize) {
      g[0] = std::byte{1};
      g[1] = g[2] = g[3] = std::byte{0};
    }
    auto d = RemoteRegion::Decode(g);
    if (d.ok()) {
      EXPECT_EQ(d->Encode(), g);
      EXPECT_GE(d->addr + d->length, d->addr);
    }
  }
}

TEST(ResolveRemote, InBounds) {
  RemoteRegion r{0x10000, 42, 4096};
  auto a = ResolveRemote(r, 0, 4096);
  ASSERT_OK(a);
  EXPECT_EQ(a->addr, 0x10000u);
  EXPECT_EQ(a->rkey, 42u);
  auto b = ResolveRemote(r, 4095, 1);
  ASSERT_OK(b);
  EXPECT_EQ(b->addr, 0x10000u + 4095);
}

TEST(ResolveRemote, RejectsOutOfBoundsAndOverflow) {
  RemoteRegion r{0x10000, 42, 4096};
  const struct {
    uint64_t offset, length;
  } bad[] = {
      {0, 0},    {0, 4097}, {4096, 1},    {4097, 0},           {1, 4096},
      {kMax, 1}, {1, kMax}, {kMax, kMax}, {4000, kMax - 3000},  // offset + length wraps to a small
                                                                // number
  };
  for (const auto& c : bad) {
    auto res = ResolveRemote(r, c.offset, c.length);
    ASSERT_FALSE(res.ok()) << c.offset << "+" << c.length;
    EXPECT_EQ(res.status().code(), StatusCode::kInvalidArgument);
  }
  // A region ending at the top of the address space: no wrap-around.
  RemoteRegion top{kMax - 4096, 1, 4096};
  EXPECT_OK(ResolveRemote(top, 0, 4096));
  EXPECT_FALSE(ResolveRemote(top, 1, 4096).ok());
  // A region that itself wraps (never produced by Decode) resolves nothing.
  RemoteRegion wraps{kMax - 10, 1, 4096};
  EXPECT_FALSE(ResolveRemote(wraps, 100, 10).ok());
}

TEST(PlanChunks, SplitsBySizeAndSge) {
  std::vector<LocalSge> local = {{0x1000, 3000, 1}, {0x9000, 5000, 2}, {0x20000, 100, 3}};
  auto plan = PlanChunks(local, 0x500000, {.chunk_bytes = 4096, .max_sge = 2});
  ASSERT_OK(plan);
  uint64_t remote = 0x500000, total = 0;
  for (const auto& c : *plan) {
    EXPECT_LE(c.length, 4096u);
    EXPECT_LE(c.sges.size(), 2u);
    EXPECT_EQ(c.remote_addr, remote);
    uint64_t sum = 0;
    for (const auto& s : c.sges) sum += s.length;
    EXPECT_EQ(sum, c.length);
    remote += c.length;
    total += c.length;
  }
  EXPECT_EQ(total, 8100u);
  // First chunk: all of entry 0 plus the first 1096 bytes of entry 1.
  ASSERT_GE(plan->size(), 2u);
  EXPECT_EQ((*plan)[0].sges[1].addr, 0x9000u);
  EXPECT_EQ((*plan)[0].sges[1].length, 1096u);
  EXPECT_EQ((*plan)[1].sges[0].addr, 0x9000u + 1096);
}

TEST(PlanChunks, OneSgePerRequest) {
  std::vector<LocalSge> local = {{0x1000, 10, 1}, {0x2000, 10, 1}, {0x3000, 10, 1}};
  auto plan = PlanChunks(local, 0, {.chunk_bytes = 1 << 20, .max_sge = 1});
  ASSERT_OK(plan);
  EXPECT_EQ(plan->size(), 3u);
}

TEST(PlanChunks, LargeTransferInMiBChunks) {
  std::vector<LocalSge> local = {{0x100000000, uint64_t{5} << 32, 9}};  // 20 GiB
  auto plan = PlanChunks(local, 0, {.chunk_bytes = 1 << 20, .max_sge = 4});
  ASSERT_OK(plan);
  EXPECT_EQ(plan->size(), size_t{5} << 12);
  for (const auto& c : *plan) ASSERT_EQ(c.length, 1u << 20);
}

TEST(PlanChunks, RejectsBadInput) {
  std::vector<LocalSge> empty;
  EXPECT_FALSE(PlanChunks(empty, 0, {}).ok());
  std::vector<LocalSge> zero = {{0x1000, 0, 1}};
  EXPECT_FALSE(PlanChunks(zero, 0, {}).ok());
  std::vector<LocalSge> one = {{0x1000, 10, 1}};
  EXPECT_FALSE(PlanChunks(one, 0, {.chunk_bytes = 0, .max_sge = 1}).ok());
  EXPECT_FALSE(PlanChunks(one, 0, {.chunk_bytes = 10, .max_sge = 0}).ok());
  EXPECT_FALSE(PlanChunks(one, kMax - 5, {}).ok());
  std::vector<LocalSge> wrap = {{0x1000, kMax, 1}, {0x1000, 2, 1}};
  EXPECT_FALSE(PlanChunks(wrap, 0, {}).ok());
}

}  // namespace
}  // namespace kvstore::rdma
