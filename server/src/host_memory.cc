#include "kvstore/server/host_memory.h"

#include <cstdlib>
#include <new>

namespace kvstore::server {
namespace {

// Heap-backed slots with byte accounting against the capacity.
class HeapMemory final : public HostMemory {
 public:
  explicit HeapMemory(uint64_t capacity) : capacity_(capacity) {}

  std::optional<Slot> Allocate(uint64_t size) override {
    uint64_t rounded = (size + 4095) & ~uint64_t{4095};
    if (used_ + rounded > capacity_) return std::nullopt;
    void* p = std::aligned_alloc(4096, rounded);
    if (p == nullptr) return std::nullopt;
    used_ += rounded;
    return Slot{static_cast<std::byte*>(p), size, rounded, 0, 0};
  }
  void Free(const Slot& slot) override {
    used_ -= slot.capacity;
    std::free(slot.data);
  }
  uint64_t capacity() const override { return capacity_; }
  uint64_t used() const override { return used_; }
  std::string Describe() const override { return "heap memory (not registered, not pinned)"; }

 private:
  uint64_t capacity_;
  uint64_t used_ = 0;
};

}  // namespace

std::unique_ptr<HostMemory> MakeArenaMemory(uint64_t capacity, bool lock_memory) {
  return std::make_unique<HeapMemory>(capacity);
}

}  // namespace kvstore::server
