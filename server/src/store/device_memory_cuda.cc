// The device tier's memory on a GPU: a DeviceArena carved by the size-class
// allocator. Compiled in every build; it only runs where DeviceArena::Create
// finds a GPU (the stub arena of a build without CUDA never does).
#include <mutex>

#include "kvstore/device/device_arena.h"
#include "kvstore/server/device_memory.h"
#include "kvstore/units.h"
#include "slab_device_memory.h"

namespace kvstore::server {
namespace {

class CudaDeviceMemory final : public SlabDeviceMemory {
 public:
  explicit CudaDeviceMemory(std::unique_ptr<device::DeviceArena> arena)
      : SlabDeviceMemory(arena->size()), arena_(std::move(arena)) {}

  Status CopyFromHost(const DeviceSlot& slot, std::span<const std::byte> src) override {
    if (src.empty()) return Status::Ok();
    KVSTORE_RETURN_IF_ERROR(CheckFits("copy from host", slot, src.size()));
    // The arena's copies share one stream and are not thread-safe.
    std::lock_guard lock(copy_mu_);
    return arena_->CopyFromHost(slot.offset, src);
  }
  Status CopyToHost(const DeviceSlot& slot, std::span<std::byte> dst) override {
    if (dst.empty()) return Status::Ok();
    KVSTORE_RETURN_IF_ERROR(CheckFits("copy to host", slot, dst.size()));
    std::lock_guard lock(copy_mu_);
    return arena_->CopyToHost(slot.offset, dst);
  }
  std::string Describe() const override {
    return "one cudaMalloc'd arena of " + FormatSize(arena_->size()) + " on GPU " +
           std::to_string(arena_->device_index()) +
           ", size-class allocator, copies on one CUDA stream";
  }
  const device::DeviceArena* arena() const override { return arena_.get(); }

 private:
  std::unique_ptr<device::DeviceArena> arena_;
  std::mutex copy_mu_;  // serializes copies on the arena's one stream
};

}  // namespace

Result<std::unique_ptr<DeviceMemory>> MakeCudaDeviceMemory(uint64_t capacity, int device_index) {
  auto arena = device::DeviceArena::Create(capacity, device_index);
  if (!arena.ok()) {
    return arena.status().WithContext("device tier of " + FormatSize(capacity) + " on GPU " +
                                      std::to_string(device_index));
  }
  return std::unique_ptr<DeviceMemory>(
      std::make_unique<CudaDeviceMemory>(std::move(arena).value()));
}

}  // namespace kvstore::server
