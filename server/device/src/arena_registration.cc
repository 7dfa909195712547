#include "kvstore/device/arena_registration.h"

#include <cstdint>

namespace kvstore::device {

Result<ArenaRegistration> RegisterArena(rdma::RdmaDevice& nic, const DeviceArena& arena,
                                        int access) {
  ArenaRegistration reg;
  reg.iova = reinterpret_cast<uintptr_t>(arena.data());
  std::string dmabuf_error;
  auto handle = arena.ExportDmabuf();
  if (handle.ok()) {
    auto mr =
        nic.RegisterDmabuf((*handle)->fd(), (*handle)->offset(), arena.size(), reg.iova, access);
    // The MR holds its own reference to the dmabuf; our fd closes here.
    if (mr.ok()) {
      reg.region = std::move(mr).value();
      reg.method = RegistrationMethod::kDmabuf;
      return reg;
    }
    dmabuf_error = mr.status().message();
  } else {
    dmabuf_error = handle.status().message();
  }
  auto mr = nic.RegisterMemory(arena.data(), arena.size(), access);
  if (!mr.ok()) {
    return Status::Unavailable(
        "device arena on GPU " + std::to_string(arena.device_index()) +
        " cannot be registered with " + nic.name() + ": dmabuf: " + dmabuf_error +
        "; peer memory: " + mr.status().message() + " (is nvidia-peermem loaded?)");
  }
  reg.region = std::move(mr).value();
  reg.method = RegistrationMethod::kPeerMemory;
  reg.note = "dmabuf unavailable: " + dmabuf_error;
  return reg;
}

}  // namespace kvstore::device
