// The device tier in a build without CUDA: never a GPU, every call Unavailable.
#include <unistd.h>

#include "kvstore/device/device_arena.h"
#include "kvstore/device/gpu_probe.h"

namespace kvstore::device {
namespace {
Status NoCuda() { return Status::Unavailable("device arena: no GPU: built without CUDA"); }
}  // namespace

bool BuiltWithCuda() { return false; }

GpuProbe ProbeGpu() { return {0, "no GPU: built without CUDA"}; }

DmabufHandle::~DmabufHandle() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<DeviceArena>> DeviceArena::Create(size_t bytes, int device_index) {
  if (bytes == 0 || device_index < 0) {
    return Status::InvalidArgument("device arena: need bytes > 0 and device_index >= 0");
  }
  return NoCuda();
}

// No arena can exist in this build; these only satisfy the linker.
DeviceArena::~DeviceArena() = default;
Result<std::unique_ptr<DmabufHandle>> DeviceArena::ExportDmabuf() const { return NoCuda(); }
Status DeviceArena::CheckRange(const char*, uint64_t, size_t) const { return NoCuda(); }
Status DeviceArena::CopyFromHostAsync(uint64_t, std::span<const std::byte>) { return NoCuda(); }
Status DeviceArena::CopyToHostAsync(uint64_t, std::span<std::byte>) { return NoCuda(); }
Status DeviceArena::Synchronize() { return NoCuda(); }
Status DeviceArena::CopyFromHost(uint64_t, std::span<const std::byte>) { return NoCuda(); }
Status DeviceArena::CopyToHost(uint64_t, std::span<std::byte>) { return NoCuda(); }

}  // namespace kvstore::device
