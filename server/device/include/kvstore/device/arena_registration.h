// Registering a DeviceArena with an RDMA NIC so queue pairs can READ/WRITE
// GPU memory directly (GPUDirect RDMA). Tries dmabuf first (upstream kernel
// path), then peer memory (ibv_reg_mr on the device pointer, which works when
// the nvidia-peermem module is loaded).
//
// Thread-safety: as RdmaDevice::RegisterMemory.
#pragma once

#include <memory>
#include <string>

#include "kvstore/device/device_arena.h"
#include "kvstore/rdma/device.h"
#include "kvstore/status.h"

namespace kvstore::device {

enum class RegistrationMethod { kDmabuf, kPeerMemory };

struct ArenaRegistration {
  std::unique_ptr<rdma::MemoryRegion> region;
  RegistrationMethod method = RegistrationMethod::kDmabuf;
  // Work requests address the arena at iova + offset; the iova is the device
  // pointer in both methods.
  uint64_t iova = 0;
  // Why dmabuf was not used, when method == kPeerMemory.
  std::string note;
};

// Unavailable naming both attempts when neither method works.
// REQUIRES: `arena` and `nic` outlive the returned region.
Result<ArenaRegistration> RegisterArena(rdma::RdmaDevice& nic, const DeviceArena& arena,
                                        int access = rdma::kDefaultAccess);

}  // namespace kvstore::device
