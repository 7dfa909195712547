#include "kvstore/tiers/slab_allocator.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace kvstore::tiers {
namespace {

constexpr uint8_t kFreeHead = 1;
constexpr uint8_t kFreeTail = 2;
constexpr uint8_t kUsedDirect = 4;  // head of a live direct run

constexpr uint64_t kSmallStep = 4096;
constexpr uint64_t kSubStepStart = 16 * 1024;  // classes below step by 4 KiB
constexpr uint64_t kSmallMin = 64;             // the smallest small class

// A caller bug (double free, foreign allocation): corrupting the allocator would
// hand the same bytes to two entries, so stop here.
[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "SlabAllocator: %s\n", what);
  std::abort();
}

uint32_t FloorLog2_64(uint64_t v) { return 63 - __builtin_clzll(v); }

}  // namespace

SlabAllocator::SlabAllocator(const SlabAllocatorOptions& options)
    : base_(options.base_offset), unit_(options.unit_bytes), slab_limit_(options.slab_bytes) {
  if (unit_ < 4096 || (unit_ & (unit_ - 1)) != 0) Die("unit_bytes must be a power of two >= 4096");
  if (slab_limit_ < unit_) Die("slab_bytes must be >= unit_bytes");
  const uint64_t units = options.total_bytes / unit_;
  if (units >= kNone) Die("too many units; raise unit_bytes");
  units_ = static_cast<uint32_t>(units);

  run_len_.assign(units_, 0);
  tail_to_head_.assign(units_, 0);
  state_.assign(units_, 0);
  free_next_.assign(units_, kNone);
  free_prev_.assign(units_, kNone);
  slab_of_.assign(units_, kNone);
  bin_head_.assign(32, kNone);

  // Class sizes in the order ClassFor() computes their indices.
  std::vector<uint64_t> sizes;
  if (options.small_classes) {
    sizes.push_back(kSmallMin);
    for (uint64_t p = kSmallMin; p < kSmallStep; p *= 2) {
      for (uint64_t sub = 1; sub <= 4 && p + sub * (p / 4) < kSmallStep; ++sub) {
        sizes.push_back(p + sub * (p / 4));
      }
    }
    small_count_ = static_cast<uint32_t>(sizes.size());
  }
  for (uint64_t s = kSmallStep; s <= kSubStepStart; s += kSmallStep) sizes.push_back(s);
  for (uint64_t p = kSubStepStart; sizes.back() < slab_limit_; p *= 2) {
    for (uint64_t sub = 1; sub <= 4; ++sub) sizes.push_back(p + sub * (p / 4));
  }
  for (uint64_t s : sizes) {
    SizeClass c;
    c.slot_bytes = s;
    c.slots_per_slab = static_cast<uint32_t>(std::max<uint64_t>(1, slab_limit_ / s));
    c.units_per_slab = static_cast<uint32_t>((c.slots_per_slab * s + unit_ - 1) / unit_);
    classes_.push_back(c);
  }

  if (units_ > 0) InsertFree(0, units_);
}

uint32_t SlabAllocator::ClassFor(uint64_t bytes) const {
  if (small_count_ != 0 && bytes <= kSmallStep) {
    if (bytes <= kSmallMin) return 0;
    const uint32_t k = FloorLog2_64(bytes - 1);  // 2^k < bytes <= 2^(k+1), k >= 6
    const uint64_t p = 1ull << k;
    const uint64_t step = p / 4;
    const uint64_t sub = (bytes - p + step - 1) / step;  // 1..4; (3584, 4096] -> the 4 KiB class
    return static_cast<uint32_t>(1 + (k - 6) * 4 + (sub - 1));
  }
  return small_count_ + LargeClassFor(bytes);
}

uint32_t SlabAllocator::LargeClassFor(uint64_t bytes) const {
  if (bytes <= kSubStepStart)
    return static_cast<uint32_t>((bytes + kSmallStep - 1) / kSmallStep - 1);
  const uint32_t k = FloorLog2_64(bytes - 1);  // 2^k < bytes <= 2^(k+1)
  const uint64_t p = 1ull << k;
  const uint64_t step = p / 4;
  const uint64_t sub = (bytes - p + step - 1) / step;  // 1..4
  return static_cast<uint32_t>(3 + (k - 14) * 4 + sub);
}

// ---- Run pool ----

void SlabAllocator::InsertFree(uint32_t head, uint32_t units) {
  run_len_[head] = units;
  const uint32_t tail = head + units - 1;
  tail_to_head_[tail] = head;
  state_[head] |= kFreeHead;
  state_[tail] |= kFreeTail;
  const uint32_t bin = FloorLog2(units);
  free_prev_[head] = kNone;
  free_next_[head] = bin_head_[bin];
  if (bin_head_[bin] != kNone) free_prev_[bin_head_[bin]] = head;
  bin_head_[bin] = head;
  bin_mask_ |= 1ull << bin;
  pool_free_units_ += units;
}

void SlabAllocator::RemoveFree(uint32_t head) {
  const uint32_t units = run_len_[head];
  const uint32_t bin = FloorLog2(units);
  const uint32_t prev = free_prev_[head], next = free_next_[head];
  if (prev != kNone) {
    free_next_[prev] = next;
  } else {
    bin_head_[bin] = next;
  }
  if (next != kNone) free_prev_[next] = prev;
  if (bin_head_[bin] == kNone) bin_mask_ &= ~(1ull << bin);
  state_[head] &= ~kFreeHead;
  state_[head + units - 1] &= ~kFreeTail;
  pool_free_units_ -= units;
}

std::optional<uint32_t> SlabAllocator::AllocateRun(uint32_t units) {
  const uint32_t b = FloorLog2(units);
  // Every run in bin >= `fit` is at least `units` long.
  const uint32_t fit = (units == (1u << b)) ? b : b + 1;
  uint32_t head = kNone;
  const uint64_t candidates = fit < 64 ? bin_mask_ & (~0ull << fit) : 0;
  if (candidates != 0) {
    head = bin_head_[__builtin_ctzll(candidates)];
  } else if (fit != b) {
    // Last resort: bin b holds runs in [2^b, 2^(b+1)); some may fit.
    for (uint32_t h = bin_head_[b]; h != kNone; h = free_next_[h]) {
      if (run_len_[h] >= units) {
        head = h;
        break;
      }
    }
  }
  if (head == kNone) return std::nullopt;
  const uint32_t len = run_len_[head];
  RemoveFree(head);
  if (len > units) InsertFree(head + units, len - units);
  run_len_[head] = units;
  return head;
}

void SlabAllocator::FreeRun(uint32_t head, uint32_t units) {
  const uint32_t right = head + units;
  if (right < units_ && (state_[right] & kFreeHead)) {
    units += run_len_[right];
    RemoveFree(right);
  }
  if (head > 0 && (state_[head - 1] & kFreeTail)) {
    const uint32_t left = tail_to_head_[head - 1];
    units += run_len_[left];
    RemoveFree(left);
    head = left;
  }
  InsertFree(head, units);
}

// ---- Slabs ----

void SlabAllocator::LinkPartial(SizeClass& c, uint32_t id) {
  Slab& s = slabs_[id];
  s.prev = kNone;
  s.next = c.partial_head;
  if (c.partial_head != kNone) slabs_[c.partial_head].prev = id;
  c.partial_head = id;
}

void SlabAllocator::UnlinkPartial(SizeClass& c, uint32_t id) {
  Slab& s = slabs_[id];
  if (s.prev != kNone) {
    slabs_[s.prev].next = s.next;
  } else {
    c.partial_head = s.next;
  }
  if (s.next != kNone) slabs_[s.next].prev = s.prev;
  s.prev = s.next = kNone;
}

std::optional<Allocation> SlabAllocator::Allocate(uint64_t bytes) {
  if (bytes == 0 || bytes > capacity_bytes()) return std::nullopt;
  if (bytes > slab_limit_) {
    const auto units = static_cast<uint32_t>((bytes + unit_ - 1) / unit_);
    auto head = AllocateRun(units);
    if (!head) return std::nullopt;
    state_[*head] |= kUsedDirect;
    direct_units_ += units;
    const Allocation a{base_ + *head * unit_, units * unit_, kDirectClass, bytes};
    allocated_bytes_ += a.capacity;
    requested_bytes_ += bytes;
    ++allocations_;
    return a;
  }

  const uint32_t ci = ClassFor(bytes);
  SizeClass& c = classes_[ci];
  if (c.partial_head == kNone) {
    auto head = AllocateRun(c.units_per_slab);
    if (!head) return std::nullopt;
    uint32_t id;
    if (!free_slab_ids_.empty()) {
      id = free_slab_ids_.back();
      free_slab_ids_.pop_back();
    } else {
      id = static_cast<uint32_t>(slabs_.size());
      slabs_.emplace_back();
    }
    Slab& s = slabs_[id];
    s.head = *head;
    s.units = c.units_per_slab;
    s.size_class = ci;
    s.used = 0;
    s.slots = c.slots_per_slab;
    s.hint = 0;
    s.free_bits.assign((c.slots_per_slab + 63) / 64, ~uint64_t{0});
    if (const uint32_t tail = c.slots_per_slab % 64; tail != 0) {
      s.free_bits.back() = (uint64_t{1} << tail) - 1;
    }
    for (uint32_t u = 0; u < s.units; ++u) slab_of_[s.head + u] = id;
    slab_units_ += s.units;
    ++c.slabs;
    LinkPartial(c, id);
  }
  const uint32_t id = c.partial_head;
  Slab& s = slabs_[id];
  // A slab on the partial list has a free slot at or after its hint.
  uint32_t w = s.hint;
  while (s.free_bits[w] == 0) ++w;
  s.hint = w;
  const uint32_t slot = w * 64 + static_cast<uint32_t>(__builtin_ctzll(s.free_bits[w]));
  s.free_bits[w] &= s.free_bits[w] - 1;
  ++s.used;
  ++c.slots_used;
  if (s.used == s.slots) UnlinkPartial(c, id);
  const Allocation a{base_ + s.head * unit_ + slot * c.slot_bytes, c.slot_bytes, ci, bytes};
  allocated_bytes_ += a.capacity;
  requested_bytes_ += bytes;
  ++allocations_;
  return a;
}

void SlabAllocator::Free(const Allocation& a) {
  if (a.offset < base_ || a.offset >= base_ + capacity_bytes())
    Die("free of an offset outside the range");
  const uint64_t rel = a.offset - base_;
  const auto unit = static_cast<uint32_t>(rel / unit_);

  if (a.size_class == kDirectClass) {
    const auto units = static_cast<uint32_t>(a.capacity / unit_);
    if (rel % unit_ != 0 || !(state_[unit] & kUsedDirect) || run_len_[unit] != units) {
      Die("free of a direct run that is not live");
    }
    state_[unit] &= ~kUsedDirect;
    direct_units_ -= units;
    FreeRun(unit, units);
  } else {
    const uint32_t id = slab_of_[unit];
    if (id == kNone || a.size_class >= classes_.size()) Die("free of a slot outside any slab");
    Slab& s = slabs_[id];
    SizeClass& c = classes_[s.size_class];
    const uint64_t in_slab = a.offset - base_ - s.head * unit_;
    const auto slot = static_cast<uint32_t>(in_slab / c.slot_bytes);
    const uint64_t bit = uint64_t{1} << (slot % 64);
    if (s.size_class != a.size_class || in_slab % c.slot_bytes != 0 || slot >= s.slots ||
        (s.free_bits[slot / 64] & bit) != 0) {
      Die("free of a slot that is not live");
    }
    s.free_bits[slot / 64] |= bit;
    s.hint = std::min(s.hint, slot / 64);
    if (s.used == s.slots) LinkPartial(c, id);
    --s.used;
    --c.slots_used;
    if (s.used == 0) {
      UnlinkPartial(c, id);
      for (uint32_t u = 0; u < s.units; ++u) slab_of_[s.head + u] = kNone;
      slab_units_ -= s.units;
      --c.slabs;
      FreeRun(s.head, s.units);
      s.free_bits = {};
      free_slab_ids_.push_back(id);
    }
  }
  allocated_bytes_ -= a.capacity;
  requested_bytes_ -= a.requested;
  --allocations_;
}

uint64_t SlabAllocator::CapacityFor(uint64_t bytes) const {
  if (bytes == 0 || bytes > capacity_bytes()) return 0;
  if (bytes > slab_limit_) return (bytes + unit_ - 1) / unit_ * unit_;
  return classes_[ClassFor(bytes)].slot_bytes;
}

AllocatorStats SlabAllocator::Stats() const {
  AllocatorStats st;
  st.capacity_bytes = capacity_bytes();
  st.allocated_bytes = allocated_bytes_;
  st.requested_bytes = requested_bytes_;
  st.free_bytes = st.capacity_bytes - allocated_bytes_;
  st.pool_free_bytes = pool_free_units_ * unit_;
  st.slab_bytes = slab_units_ * unit_;
  st.direct_bytes = direct_units_ * unit_;
  st.allocations = allocations_;
  st.fragmentation =
      allocated_bytes_ == 0 ? 0.0 : 1.0 - static_cast<double>(requested_bytes_) / allocated_bytes_;
  if (bin_mask_ != 0) {
    const uint32_t top = FloorLog2_64(bin_mask_);
    uint32_t largest = 0;
    for (uint32_t h = bin_head_[top]; h != kNone; h = free_next_[h]) {
      largest = std::max(largest, run_len_[h]);
    }
    st.largest_free_run = largest * unit_;
  }
  for (const SizeClass& c : classes_) {
    st.classes.push_back({c.slot_bytes, c.slabs, c.slabs * c.slots_per_slab, c.slots_used});
  }
  return st;
}

}  // namespace kvstore::tiers
