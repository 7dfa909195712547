#include "kvstore/tiers/slab_allocator.h"

#include <algorithm>
#include <map>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace kvstore::tiers {
namespace {

constexpr uint64_t KiB = 1024, MiB = 1024 * 1024;

SlabAllocatorOptions Arena(uint64_t bytes, uint64_t base = 0) {
  SlabAllocatorOptions o;
  o.base_offset = base;
  o.total_bytes = bytes;
  return o;
}

std::vector<Allocation> FillWith(SlabAllocator& a, uint64_t bytes) {
  std::vector<Allocation> out;
  while (auto x = a.Allocate(bytes)) out.push_back(*x);
  return out;
}

// No two live allocations overlap and all lie inside [base, base + capacity).
void ExpectDisjoint(const std::vector<Allocation>& live, uint64_t base, uint64_t capacity) {
  std::vector<Allocation> v = live;
  std::sort(v.begin(), v.end(), [](auto& x, auto& y) { return x.offset < y.offset; });
  for (size_t i = 0; i < v.size(); ++i) {
    ASSERT_GE(v[i].offset, base);
    ASSERT_LE(v[i].offset + v[i].capacity, base + capacity);
    ASSERT_GE(v[i].capacity, v[i].requested);
    ASSERT_EQ(v[i].offset % 4096, 0u);
    if (i > 0) {
      ASSERT_LE(v[i - 1].offset + v[i - 1].capacity, v[i].offset);
    }
  }
}

void ExpectStatsMatch(const SlabAllocator& a, const std::vector<Allocation>& live) {
  uint64_t allocated = 0, requested = 0;
  for (auto& x : live) {
    allocated += x.capacity;
    requested += x.requested;
  }
  const AllocatorStats s = a.Stats();
  EXPECT_EQ(s.allocations, live.size());
  EXPECT_EQ(s.allocated_bytes, allocated);
  EXPECT_EQ(s.requested_bytes, requested);
  EXPECT_EQ(s.free_bytes, s.capacity_bytes - allocated);
  EXPECT_EQ(s.pool_free_bytes + s.slab_bytes + s.direct_bytes, s.capacity_bytes);
  EXPECT_LE(s.largest_free_run, s.pool_free_bytes);
  uint64_t used_slots = 0;
  for (auto& c : s.classes) {
    EXPECT_LE(c.slots_used, c.slots_total);
    used_slots += c.slots_used;
  }
  uint64_t slab_allocs = 0;
  for (auto& x : live) slab_allocs += x.size_class != kDirectClass;
  EXPECT_EQ(used_slots, slab_allocs);
}

TEST(SlabAllocatorTest, SixteenFourMiBValuesFitIn64MiB) {
  SlabAllocator a(Arena(64 * MiB));
  auto live = FillWith(a, 4 * MiB);
  EXPECT_EQ(live.size(), 16u);
  ExpectDisjoint(live, 0, 64 * MiB);
  EXPECT_EQ(a.Stats().fragmentation, 0.0);
  EXPECT_FALSE(a.Allocate(4 * KiB).has_value());  // exhausted, and nothing changed:
  ExpectStatsMatch(a, live);
}

TEST(SlabAllocatorTest, ZeroAndOversizeAreRefused) {
  SlabAllocator a(Arena(8 * MiB));
  EXPECT_FALSE(a.Allocate(0).has_value());
  EXPECT_FALSE(a.Allocate(8 * MiB + 1).has_value());
  EXPECT_TRUE(a.Allocate(8 * MiB).has_value());
}

TEST(SlabAllocatorTest, FreedMemoryServesOtherClassesAndLargeRuns) {
  SlabAllocator a(Arena(64 * MiB, 1 * MiB));
  auto big = FillWith(a, 4 * MiB);
  ASSERT_EQ(big.size(), 16u);
  for (auto& x : big) a.Free(x);
  EXPECT_EQ(a.Stats().pool_free_bytes, 64 * MiB);

  auto mid = FillWith(a, 256 * KiB);
  EXPECT_EQ(mid.size(), 256u);
  ExpectDisjoint(mid, 1 * MiB, 64 * MiB);
  ExpectStatsMatch(a, mid);
  for (auto& x : mid) a.Free(x);
  EXPECT_EQ(a.Stats().largest_free_run, 64 * MiB);

  auto huge = FillWith(a, 32 * MiB);
  EXPECT_EQ(huge.size(), 2u);
  ExpectDisjoint(huge, 1 * MiB, 64 * MiB);
}

TEST(SlabAllocatorTest, ReusesFreedSlot) {
  SlabAllocator a(Arena(16 * MiB));
  auto x = a.Allocate(64 * KiB);
  ASSERT_TRUE(x);
  a.Free(*x);
  auto y = a.Allocate(64 * KiB);
  ASSERT_TRUE(y);
  EXPECT_EQ(y->offset, x->offset);
}

TEST(SlabAllocatorTest, SizeClassesBoundWaste) {
  SlabAllocator a(Arena(64 * MiB));
  for (uint64_t b : std::vector<uint64_t>{1, 4096, 4097, 17 * KiB, 33 * KiB, 65 * KiB, 100 * KiB,
                                          1 * MiB + 1, 2 * MiB, 3 * MiB + 5, 33 * MiB}) {
    const uint64_t cap = a.CapacityFor(b);
    ASSERT_GE(cap, b) << b;
    EXPECT_EQ(cap % 4096, 0u) << b;
    if (b > 16 * KiB) {
      EXPECT_LE(cap, b + b / 4 + 1) << b;
    }
    auto x = a.Allocate(b);
    ASSERT_TRUE(x) << b;
    EXPECT_EQ(x->capacity, cap) << b;
    a.Free(*x);
  }
}

TEST(SlabAllocatorTest, FragmentationIsReported) {
  SlabAllocator a(Arena(64 * MiB));
  auto x = a.Allocate(40 * KiB + 1);  // class 48 KiB
  ASSERT_TRUE(x);
  EXPECT_EQ(x->capacity, 48 * KiB);
  const auto s = a.Stats();
  EXPECT_NEAR(s.fragmentation, 1.0 - (40.0 * KiB + 1) / (48.0 * KiB), 1e-9);
  EXPECT_EQ(s.classes[x->size_class].slots_used, 1u);
}

TEST(SlabAllocatorTest, ExhaustionLeavesStateIntact) {
  SlabAllocator a(Arena(8 * MiB));
  std::vector<Allocation> live = FillWith(a, 4 * KiB);
  EXPECT_EQ(live.size(), 2048u);
  const auto before = a.Stats();
  EXPECT_FALSE(a.Allocate(4 * KiB));
  EXPECT_FALSE(a.Allocate(3 * MiB));
  EXPECT_EQ(a.Stats().allocated_bytes, before.allocated_bytes);
  ExpectDisjoint(live, 0, 8 * MiB);
  for (auto& x : live) a.Free(x);
  EXPECT_EQ(a.Stats().allocated_bytes, 0u);
  EXPECT_EQ(a.Stats().slab_bytes, 0u);
  EXPECT_EQ(a.Stats().largest_free_run, 8 * MiB);
}

TEST(SlabAllocatorTest, RandomizedStressKeepsAllocationsDisjoint) {
  constexpr uint64_t kBase = 4096 * 16, kCap = 256 * MiB;
  SlabAllocator a(Arena(kCap, kBase));
  std::mt19937_64 rng(42);
  const std::vector<uint64_t> sizes = {4 * KiB, 5000,        64 * KiB, 100 * KiB, 512 * KiB,
                                       2 * MiB, 2 * MiB + 1, 4 * MiB,  9 * MiB,   33 * MiB};
  std::vector<Allocation> live;
  size_t refused = 0;
  for (int step = 0; step < 20000; ++step) {
    if (live.empty() || rng() % 100 < 55) {
      uint64_t b = sizes[rng() % sizes.size()];
      if (rng() % 4 == 0) b = 1 + rng() % (3 * MiB);
      if (auto x = a.Allocate(b)) {
        live.push_back(*x);
      } else {
        ++refused;
      }
    } else {
      const size_t i = rng() % live.size();
      a.Free(live[i]);
      live[i] = live.back();
      live.pop_back();
    }
    if (step % 1000 == 0) {
      ExpectDisjoint(live, kBase, kCap);
      ExpectStatsMatch(a, live);
    }
  }
  ExpectDisjoint(live, kBase, kCap);
  ExpectStatsMatch(a, live);
  EXPECT_GT(refused, 0u);  // the run did reach exhaustion
  for (auto& x : live) a.Free(x);
  const auto s = a.Stats();
  EXPECT_EQ(s.allocated_bytes, 0u);
  EXPECT_EQ(s.pool_free_bytes, kCap);
  EXPECT_EQ(s.largest_free_run, kCap);  // everything coalesced back
}

TEST(SlabAllocatorDeathTest, DoubleFreeAborts) {
  SlabAllocator a(Arena(8 * MiB));
  auto x = a.Allocate(64 * KiB);
  auto y = a.Allocate(64 * KiB);  // keeps the slab alive
  ASSERT_TRUE(x && y);
  a.Free(*x);
  EXPECT_DEATH(a.Free(*x), "not live");
}

TEST(SlabAllocatorTest, SmallValuesTakeSmallSlots) {
  SlabAllocatorOptions o;
  o.total_bytes = 64 * MiB;
  o.small_classes = true;
  SlabAllocator a(o);
  const std::vector<std::pair<uint64_t, uint64_t>> want = {
      {1, 64},      {64, 64},     {65, 80},     {100, 112},   {128, 128},   {129, 160},
      {1000, 1024}, {2049, 2560}, {3584, 3584}, {3585, 4096}, {4096, 4096}, {4097, 8192}};
  for (auto [bytes, cap] : want) EXPECT_EQ(a.CapacityFor(bytes), cap) << bytes;
  // 20,000 values of 100 B: 112 B slots, 16-byte aligned, disjoint; 2.2 MiB, not 80 MiB.
  std::vector<Allocation> live;
  for (int i = 0; i < 20000; ++i) {
    auto x = a.Allocate(100);
    ASSERT_TRUE(x) << i;
    EXPECT_EQ(x->offset % 16, 0u);
    live.push_back(*x);
  }
  std::sort(live.begin(), live.end(), [](auto& x, auto& y) { return x.offset < y.offset; });
  for (size_t i = 1; i < live.size(); ++i) {
    ASSERT_LE(live[i - 1].offset + live[i - 1].capacity, live[i].offset);
  }
  ExpectStatsMatch(a, live);
  const AllocatorStats s = a.Stats();
  EXPECT_EQ(s.allocated_bytes, 20000u * 112);
  EXPECT_LE(s.slab_bytes, 4 * MiB);
  EXPECT_NEAR(s.fragmentation, 1.0 - 100.0 / 112.0, 1e-9);
  for (auto& x : live) a.Free(x);
  EXPECT_EQ(a.Stats().pool_free_bytes, 64 * MiB);
  EXPECT_EQ(a.Stats().allocations, 0u);
}

// A slab's free slots are a bitmap: slots freed anywhere in a full slab are
// handed out again, lowest first, and no other; a full slab takes nothing more.
TEST(SlabAllocatorTest, FreedSlotsOfAFullSlabComeBackLowestFirst) {
  SlabAllocatorOptions o;
  o.total_bytes = 16 * MiB;
  o.small_classes = true;
  SlabAllocator a(o);
  const uint64_t per_slab = 2 * MiB / 64;  // 32768 slots of 64 B (512 bitmap words)
  std::vector<Allocation> slab;
  for (uint64_t i = 0; i < per_slab; ++i) {
    auto x = a.Allocate(64);
    ASSERT_TRUE(x) << i;
    slab.push_back(*x);
  }
  std::sort(slab.begin(), slab.end(), [](auto& x, auto& y) { return x.offset < y.offset; });
  ASSERT_EQ(slab.back().offset - slab.front().offset, (per_slab - 1) * 64);  // one slab
  // Free slots in words far apart, both ends of a word, and the very last slot.
  std::vector<uint64_t> freed;
  for (uint64_t i : {per_slab - 1, uint64_t{0}, uint64_t{63}, uint64_t{64}, uint64_t{20000},
                     uint64_t{127}, uint64_t{4097}}) {
    a.Free(slab[i]);
    freed.push_back(slab[i].offset);
  }
  std::sort(freed.begin(), freed.end());
  for (uint64_t off : freed) {
    auto x = a.Allocate(60);
    ASSERT_TRUE(x);
    EXPECT_EQ(x->offset, off);
  }
  auto next = a.Allocate(64);  // the slab is full again: a new one
  ASSERT_TRUE(next);
  EXPECT_TRUE(next->offset < slab.front().offset || next->offset > slab.back().offset);
  EXPECT_EQ(a.Stats().allocations, per_slab + 1);
}

// CapacityOf rebuilds the capacity of a live allocation from its class and
// requested size, for small and large slab classes and direct runs alike.
TEST(SlabAllocatorTest, CapacityOfMatchesWhatAllocateHandedOut) {
  SlabAllocatorOptions o;
  o.total_bytes = 64 * MiB;
  o.small_classes = true;
  SlabAllocator a(o);
  for (uint64_t bytes : {uint64_t{1}, uint64_t{64}, uint64_t{100}, uint64_t{3585}, uint64_t{4097},
                         100 * KiB, 2 * MiB, 2 * MiB + 1, 5 * MiB + 3}) {
    auto x = a.Allocate(bytes);
    ASSERT_TRUE(x) << bytes;
    EXPECT_EQ(a.CapacityOf(x->size_class, bytes), x->capacity) << bytes;
    a.Free(Allocation{x->offset, a.CapacityOf(x->size_class, bytes), x->size_class, bytes});
  }
  EXPECT_EQ(a.Stats().allocations, 0u);
  EXPECT_EQ(a.Stats().pool_free_bytes, 64 * MiB);
}

TEST(SlabAllocatorDeathTest, DoubleFreeOfASmallSlotAborts) {
  SlabAllocatorOptions o;
  o.total_bytes = 8 * MiB;
  o.small_classes = true;
  SlabAllocator a(o);
  std::vector<Allocation> live;
  for (int i = 0; i < 200; ++i) live.push_back(*a.Allocate(64));
  a.Free(live[130]);
  EXPECT_DEATH(a.Free(live[130]), "not live");
}

}  // namespace
}  // namespace kvstore::tiers
