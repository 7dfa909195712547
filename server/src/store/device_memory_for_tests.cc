// TEST DOUBLE of the device tier's memory (see MakeHostBackedDeviceMemoryForTests):
// a host heap buffer with the same allocator; copies are memcpy.
#include <cstdlib>
#include <cstring>

#include "kvstore/server/device_memory.h"
#include "kvstore/units.h"
#include "slab_device_memory.h"

namespace kvstore::server {
namespace {

class HostBackedDeviceMemory final : public SlabDeviceMemory {
 public:
  explicit HostBackedDeviceMemory(uint64_t capacity)
      : SlabDeviceMemory(capacity),
        bytes_(static_cast<std::byte*>(std::calloc(capacity == 0 ? 1 : capacity, 1))) {}
  ~HostBackedDeviceMemory() override { std::free(bytes_); }

  Status CopyFromHost(const DeviceSlot& slot, std::span<const std::byte> src) override {
    if (src.empty()) return Status::Ok();
    KVSTORE_RETURN_IF_ERROR(CheckFits("copy from host", slot, src.size()));
    std::memcpy(bytes_ + slot.offset, src.data(), src.size());
    return Status::Ok();
  }
  Status CopyToHost(const DeviceSlot& slot, std::span<std::byte> dst) override {
    if (dst.empty()) return Status::Ok();
    KVSTORE_RETURN_IF_ERROR(CheckFits("copy to host", slot, dst.size()));
    std::memcpy(dst.data(), bytes_ + slot.offset, dst.size());
    return Status::Ok();
  }
  std::string Describe() const override {
    return "host heap standing in for GPU memory (TEST DOUBLE, " + FormatSize(capacity()) + ")";
  }

 private:
  std::byte* bytes_;
};

}  // namespace

std::unique_ptr<DeviceMemory> MakeHostBackedDeviceMemoryForTests(uint64_t capacity) {
  return std::make_unique<HostBackedDeviceMemory>(capacity);
}

}  // namespace kvstore::server
