// SlabAllocator: a size-class allocator over a byte range of an arena.
//
// It hands out offsets; it never reads or writes the managed memory, so all
// bookkeeping lives in ordinary host memory and the same allocator can manage
// a GPU arena. Allocate and Free are O(1) (see "Scheme").
//
// Scheme
//   * The range is cut into units of `unit_bytes` (default 64 KiB). A page-run
//     pool hands out runs of whole units: free runs sit in segregated lists by
//     floor(log2(length)) with a bitmap of non-empty lists; allocation takes the
//     first run from the lowest list whose runs all fit (one bit scan) and splits
//     it; free coalesces with both neighbours through boundary tags kept in
//     per-unit arrays. Only when no such list has a run does it scan the one list
//     whose runs may or may not fit (near exhaustion, so rare).
//   * Requests above `slab_bytes` (default 2 MiB) are direct runs: rounded up to
//     whole units, no class rounding. 4 MiB values in a 64 MiB arena: 16 fit.
//     They report size_class kDirectClass.
//   * With small_classes (the host tier turns it on), requests up to 4 KiB take
//     slots of 64 B and then powers of two with 4 sub-steps (80, 96, 112, 128,
//     160, ... 3584 B), 16-byte aligned, so a 100 B value takes 112 B, not
//     4 KiB: small values cost at most 25% (below 80 B, what 64 B wastes).
//   * Smaller requests use size classes: 4, 8, 12, 16 KiB, then powers of two
//     with 4 sub-steps (16, 20, 24, 28, 32, 40, 48, 56, 64 KiB, ... up to
//     slab_bytes), all multiples of 4 KiB so every slot is 4 KiB-aligned (direct
//     I/O, DMA). Rounding wastes at most 25% (20% above 16 KiB). A slab is one
//     run of about slab_bytes holding equal slots; slabs with free slots are
//     listed per class; a slab whose last slot is freed goes back to the run pool
//     at once, so memory freed by one class serves any other class or a direct run.
//     A slab tracks its free slots in a bitmap (a bit a slot) with a hint of
//     its first word holding a free one: allocation takes the lowest free slot.
//
// Thread-compatibility: not internally locked. The owner (the Store, under its
// own mutex) serializes every call, const ones included.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

namespace kvstore::tiers {

struct SlabAllocatorOptions {
  // First byte of the managed range (an offset into the arena). Default 0.
  uint64_t base_offset = 0;
  // Bytes managed; the tail beyond a whole unit is unused. Default 0 (empty).
  uint64_t total_bytes = 0;
  // Run granularity; a power of two >= 4096. Default 64 KiB.
  uint64_t unit_bytes = 64ull << 10;
  // Slab size and the boundary between slab classes and direct runs. Default 2 MiB.
  uint64_t slab_bytes = 2ull << 20;
  // Slots below 4 KiB for small values (see "Scheme"). Default false: every
  // slot 4 KiB-aligned, as direct I/O and DMA of whole slots want.
  bool small_classes = false;
};

struct Allocation {
  uint64_t offset = 0;      // from the arena start (base_offset included)
  uint64_t capacity = 0;    // usable bytes at offset, >= requested
  uint32_t size_class = 0;  // index into AllocatorStats::classes, or kDirectClass
  uint64_t requested = 0;   // bytes asked for; pass the Allocation back to Free unchanged
};

inline constexpr uint32_t kDirectClass = std::numeric_limits<uint32_t>::max();

struct SizeClassStats {
  uint64_t slot_bytes = 0;
  uint64_t slabs = 0;
  uint64_t slots_total = 0;
  uint64_t slots_used = 0;
};

struct AllocatorStats {
  uint64_t capacity_bytes = 0;    // managed bytes (whole units)
  uint64_t allocated_bytes = 0;   // sum of live capacities
  uint64_t requested_bytes = 0;   // sum of live requested sizes
  uint64_t free_bytes = 0;        // capacity - allocated (includes free slots inside slabs)
  uint64_t pool_free_bytes = 0;   // bytes in free runs (usable by any class)
  uint64_t largest_free_run = 0;  // bytes; the largest direct allocation that fits now
  uint64_t slab_bytes = 0;        // bytes held by slabs
  uint64_t direct_bytes = 0;      // bytes held by direct runs
  uint64_t allocations = 0;       // live allocations
  // 1 - requested/allocated: share of handed-out bytes that hold nothing. 0 when empty.
  double fragmentation = 0;
  std::vector<SizeClassStats> classes;  // index = Allocation::size_class
};

class SlabAllocator {
 public:
  // REQUIRES: unit_bytes is a power of two >= 4096; slab_bytes >= unit_bytes;
  // base_offset is a multiple of 4096.
  explicit SlabAllocator(const SlabAllocatorOptions& options);
  SlabAllocator(const SlabAllocator&) = delete;
  SlabAllocator& operator=(const SlabAllocator&) = delete;

  // nullopt when bytes == 0 or nothing large enough is free; no state changes then.
  std::optional<Allocation> Allocate(uint64_t bytes);
  // REQUIRES: `a` came from Allocate on this allocator and was not freed since.
  // A double free or foreign allocation aborts (it is a bug in the caller).
  void Free(const Allocation& a);

  // Capacity an Allocate(bytes) would get, without allocating; 0 when too large.
  uint64_t CapacityFor(uint64_t bytes) const;
  // The capacity of a live Allocation of `size_class` asked for `requested`
  // bytes (a slab class's slot, or a direct run's whole units): an owner that
  // keeps only offset, size_class and requested rebuilds the Allocation for
  // Free with it.
  uint64_t CapacityOf(uint32_t size_class, uint64_t requested) const {
    return size_class == kDirectClass ? (requested + unit_ - 1) / unit_ * unit_
                                      : classes_[size_class].slot_bytes;
  }
  AllocatorStats Stats() const;
  uint64_t capacity_bytes() const { return units_ * unit_; }

 private:
  static constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();

  struct Slab {
    uint32_t head = kNone;  // first unit of its run
    uint32_t units = 0;
    uint32_t size_class = 0;
    uint32_t used = 0;
    uint32_t prev = kNone, next = kNone;  // in its class's list of slabs with free slots
    uint32_t slots = 0;                   // slots_per_slab of its class
    uint32_t hint = 0;                    // no free slot in free_bits words before this one
    // One bit a slot, set = free (1/512 of the slot bytes of the smallest
    // class); the lowest free slot goes first; freeing a free slot aborts.
    std::vector<uint64_t> free_bits;
  };
  struct SizeClass {
    uint64_t slot_bytes = 0;
    uint32_t slots_per_slab = 0;
    uint32_t units_per_slab = 0;
    uint32_t partial_head = kNone;  // slabs with at least one free slot
    uint64_t slabs = 0;
    uint64_t slots_used = 0;
  };

  // Run pool.
  std::optional<uint32_t> AllocateRun(uint32_t units);
  void FreeRun(uint32_t head, uint32_t units);
  void InsertFree(uint32_t head, uint32_t units);
  void RemoveFree(uint32_t head);
  static uint32_t FloorLog2(uint32_t v) { return 31 - __builtin_clz(v); }

  // Slabs.
  uint32_t ClassFor(uint64_t bytes) const;
  uint32_t LargeClassFor(uint64_t bytes) const;  // index among the classes of 4 KiB and up
  void UnlinkPartial(SizeClass& c, uint32_t slab_id);
  void LinkPartial(SizeClass& c, uint32_t slab_id);

  uint64_t base_;
  uint64_t unit_;
  uint32_t small_count_ = 0;  // classes below 4 KiB (0 without small_classes)
  uint64_t slab_limit_;
  uint32_t units_;

  // Per-unit boundary tags. For a free run: run_len_ at its head, tail_to_head_
  // at its last unit, state_ marks both. For a used run: run_len_ at its head.
  std::vector<uint32_t> run_len_;
  std::vector<uint32_t> tail_to_head_;
  std::vector<uint8_t> state_;
  std::vector<uint32_t> free_next_, free_prev_;  // free-list links at run heads
  std::vector<uint32_t> slab_of_;                // unit -> slab id (kNone: not a slab)
  std::vector<uint32_t> bin_head_;               // by floor(log2(units))
  uint64_t bin_mask_ = 0;

  std::vector<SizeClass> classes_;
  std::vector<Slab> slabs_;
  std::vector<uint32_t> free_slab_ids_;

  uint64_t pool_free_units_ = 0;
  uint64_t allocated_bytes_ = 0;
  uint64_t requested_bytes_ = 0;
  uint64_t direct_units_ = 0;
  uint64_t slab_units_ = 0;
  uint64_t allocations_ = 0;
};

}  // namespace kvstore::tiers
