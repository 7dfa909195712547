// RdmaDevice: one opened RDMA NIC port with its protection domain, ready to
// register memory and create queue pairs; MemoryRegion: one registration.
//
// Open() is where a machine without RDMA is detected: libibverbs returns no
// device list (errno ENOSYS when the kernel has no RDMA support) or an empty
// one, and Open() returns Unavailable saying bulk transfers will use TCP.
//
// Thread-safety: RdmaDevice is immutable after Open(); RegisterMemory and
// RegisterDmabuf may be called from several threads (libibverbs serializes
// them). The device must outlive every MemoryRegion and QueuePair made from it.
#pragma once

#include <infiniband/verbs.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "kvstore/rdma/remote_region.h"
#include "kvstore/rdma/verbs_handles.h"
#include "kvstore/status.h"

namespace kvstore::rdma {

// Local write plus remote read and write: what a transfer buffer needs.
inline constexpr int kDefaultAccess =
    IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE;

struct RdmaOptions {
  // Device name as in `ibv_devices` (e.g. "mlx5_0"); empty = first device.
  std::string device_name = "";
  // Physical port, 1-based.
  uint8_t port = 1;
  // GID table index; -1 = choose: RoCE v2 with an IPv4-mapped address first,
  // then any RoCE v2, then index 0 (InfiniBand uses index 0 anyway).
  int gid_index = -1;
};

// Where a GID came from, for logs and tests.
struct PortInfo {
  uint16_t lid = 0;
  ibv_mtu active_mtu = IBV_MTU_1024;
  uint8_t link_layer = IBV_LINK_LAYER_UNSPECIFIED;
  uint32_t max_msg_size = 0;
  uint8_t gid_index = 0;
  std::array<uint8_t, 16> gid{};
  bool roce_v2 = false;
};

// A registration of host or device memory with a device's PD.
// Deregisters on destruction. REQUIRES: the memory stays valid until then.
class MemoryRegion {
 public:
  explicit MemoryRegion(MrPtr mr) : mr_(std::move(mr)) {}

  void* addr() const { return mr_->addr; }
  size_t length() const { return mr_->length; }
  uint32_t lkey() const { return mr_->lkey; }
  uint32_t rkey() const { return mr_->rkey; }
  // How a peer names this region (for a client's registered buffer).
  // REQUIRES: `iova` is the address work requests use: addr() for host
  // memory; the iova given at registration for dmabuf regions.
  RemoteRegion ToRemote(uint64_t iova) const { return {iova, rkey(), length()}; }
  RemoteRegion ToRemote() const { return ToRemote(reinterpret_cast<uintptr_t>(addr())); }

 private:
  MrPtr mr_;
};

class RdmaDevice {
 public:
  // Unavailable when there is no device (the message says why and that bulk
  // transfers will use TCP) or options.device_name is not present;
  // Internal/Unavailable with the verbs call, device and strerror otherwise.
  static Result<std::unique_ptr<RdmaDevice>> Open(const RdmaOptions& options = {});

  // Registers host memory (or device memory when nvidia-peermem is loaded).
  // REQUIRES: [addr, addr + length) stays mapped until the region is destroyed.
  Result<std::unique_ptr<MemoryRegion>> RegisterMemory(void* addr, size_t length,
                                                       int access = kDefaultAccess);
  // Registers a dmabuf (e.g. GPU memory exported by CUDA). Work requests use
  // addresses starting at `iova`. The fd may be closed after this returns.
  Result<std::unique_ptr<MemoryRegion>> RegisterDmabuf(int fd, uint64_t offset, size_t length,
                                                       uint64_t iova, int access = kDefaultAccess);

  const std::string& name() const { return name_; }
  const PortInfo& port_info() const { return port_info_; }
  uint8_t port() const { return port_; }
  const ibv_device_attr& attr() const { return attr_; }
  ibv_context* context() const { return context_.get(); }
  ibv_pd* pd() const { return pd_.get(); }

 private:
  RdmaDevice() = default;

  std::string name_;
  uint8_t port_ = 1;
  PortInfo port_info_;
  ibv_device_attr attr_{};
  // Destroyed bottom-up: PD before the context.
  ContextPtr context_;
  PdPtr pd_;
};

// True when libibverbs lists at least one device; `reason` says why not.
// Never logs; the caller decides whether to.
bool RdmaDevicesPresent(std::string* reason);

}  // namespace kvstore::rdma
