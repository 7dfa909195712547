#include "kvstore/server/host_memory.h"

#include <cstdlib>

#include "kvstore/tiers/host_arena.h"
#include "kvstore/tiers/slab_allocator.h"
#include "kvstore/units.h"

namespace kvstore::server {
namespace {

// Slots carved by the size-class allocator out of one registered arena.
class ArenaMemory final : public HostMemory {
 public:
  explicit ArenaMemory(std::unique_ptr<tiers::HostArena> arena)
      : arena_(std::move(arena)),
        allocator_(tiers::SlabAllocatorOptions{
            .base_offset = 0, .total_bytes = arena_->size(), .small_classes = true}) {}

  std::optional<Slot> Allocate(uint64_t size) override {
    auto a = allocator_.Allocate(size);
    if (!a) return std::nullopt;
    return Slot{
        arena_->data() + a->offset, size, a->capacity, a->offset, a->size_class, a->requested};
  }
  void Free(const Slot& slot) override {
    allocator_.Free(tiers::Allocation{slot.offset, slot.capacity, slot.size_class, slot.requested});
  }
  Slot SlotAt(std::byte* data, uint32_t size_class, uint64_t requested) const override {
    const auto offset = static_cast<uint64_t>(data - arena_->data());
    return Slot{data,   requested,  allocator_.CapacityOf(size_class, requested),
                offset, size_class, requested};
  }
  uint64_t capacity() const override { return allocator_.capacity_bytes(); }
  uint64_t used() const override { return allocator_.Stats().allocated_bytes; }
  std::string Describe() const override {
    return std::string("one mmap'd, pre-faulted arena, ") +
           (arena_->locked() ? "pinned (mlock)" : "not pinned (--no-mlock or mlock refused)") +
           (arena_->huge_pages()
                ? ", transparent huge pages (khugepaged collapses them in the background)"
                : "") +
           ", size-class allocator (slots from 64 B)";
  }
  std::span<std::byte> arena() const override { return {arena_->data(), arena_->size()}; }

 private:
  std::unique_ptr<tiers::HostArena> arena_;
  tiers::SlabAllocator allocator_;
};

class HeapMemory final : public HostMemory {
 public:
  explicit HeapMemory(uint64_t capacity) : capacity_(capacity) {}

  std::optional<Slot> Allocate(uint64_t size) override {
    const uint64_t rounded = Rounded(size);
    if (used_ + rounded > capacity_) return std::nullopt;
    void* p = std::aligned_alloc(4096, rounded);
    if (p == nullptr) return std::nullopt;
    used_ += rounded;
    return Slot{static_cast<std::byte*>(p), size, rounded, 0, 0, size};
  }
  void Free(const Slot& slot) override {
    used_ -= slot.capacity;
    std::free(slot.data);
  }
  Slot SlotAt(std::byte* data, uint32_t size_class, uint64_t requested) const override {
    return Slot{data, requested, Rounded(requested), 0, size_class, requested};
  }
  uint64_t capacity() const override { return capacity_; }
  uint64_t used() const override { return used_; }
  std::string Describe() const override { return "heap memory (not registered, not pinned)"; }

 private:
  static uint64_t Rounded(uint64_t size) { return (size + 4095) & ~uint64_t{4095}; }
  uint64_t capacity_;
  uint64_t used_ = 0;
};

}  // namespace

Result<std::unique_ptr<HostMemory>> MakeArenaMemory(uint64_t capacity, bool lock_memory) {
  tiers::HostArenaOptions o;
  o.bytes = capacity;
  o.lock = lock_memory;
  auto arena = tiers::HostArena::Create(o);
  if (!arena.ok()) return arena.status().WithContext("host arena of " + FormatSize(capacity));
  return std::unique_ptr<HostMemory>(std::make_unique<ArenaMemory>(std::move(arena).value()));
}

std::unique_ptr<HostMemory> MakeHeapMemory(uint64_t capacity) {
  return std::make_unique<HeapMemory>(capacity);
}

}  // namespace kvstore::server
