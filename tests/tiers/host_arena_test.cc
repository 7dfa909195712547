#include "kvstore/tiers/host_arena.h"

#include <cstdint>
#include <cstring>

#include <gtest/gtest.h>

#include "status_matchers.h"

namespace kvstore::tiers {
namespace {

TEST(HostArenaTest, CreatesAlignedWritableRegion) {
  HostArenaOptions opts;
  opts.bytes = (8ull << 20) + 100;  // rounded up to a page
  auto arena = HostArena::Create(opts);
  ASSERT_OK(arena);
  HostArena& a = **arena;
  EXPECT_EQ(a.size() % 4096, 0u);
  EXPECT_GE(a.size(), opts.bytes);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data()) % (2u << 20), 0u);
  std::memset(a.data(), 0xab, a.size());
  EXPECT_EQ(a.data()[a.size() - 1], std::byte{0xab});
  EXPECT_EQ(a.bytes().size(), a.size());
}

TEST(HostArenaTest, RefusesZeroBytes) {
  HostArenaOptions opts;
  opts.bytes = 0;
  auto arena = HostArena::Create(opts);
  ASSERT_FALSE(arena.ok());
  EXPECT_EQ(arena.status().code(), StatusCode::kInvalidArgument);
}

TEST(HostArenaTest, RunsUnpinnedWhenLockIsOff) {
  HostArenaOptions opts;
  opts.bytes = 4ull << 20;
  opts.lock = false;
  opts.huge_pages = false;
  auto arena = HostArena::Create(opts);
  ASSERT_OK(arena);
  EXPECT_FALSE((*arena)->locked());
  EXPECT_FALSE((*arena)->huge_pages());
}

TEST(HostArenaTest, LockEitherPinsOrFallsBack) {
  // Root pins; a non-root process past RLIMIT_MEMLOCK warns and runs unpinned.
  HostArenaOptions opts;
  opts.bytes = 16ull << 20;
  auto arena = HostArena::Create(opts);
  ASSERT_OK(arena);
  (*arena)->data()[0] = std::byte{1};
}

}  // namespace
}  // namespace kvstore::tiers
