#include "kvstore/rdma/device.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "byte_io.h"

namespace kvstore::rdma {

using internal::ErrnoText;

namespace {

constexpr const char* kTcpFallback = "bulk transfers will use TCP";

// Lists devices; on failure returns Unavailable explaining there is no RDMA.
Result<DeviceListPtr> ListDevices(int* count) {
  errno = 0;
  ibv_device** list = ibv_get_device_list(count);
  if (list == nullptr) {
    const int err = errno;
    return Status::Unavailable(
        "no RDMA device: ibv_get_device_list returned NULL with " + ErrnoText(err) +
        (err == ENOSYS ? " (no RDMA support in this kernel)" : "") + "; " + kTcpFallback);
  }
  DeviceListPtr owned(list);
  if (*count <= 0) {
    return Status::Unavailable(std::string("no RDMA device: ibv_get_device_list returned an "
                                           "empty list; ") +
                               kTcpFallback);
  }
  return owned;
}

bool IsIpv4Mapped(const ibv_gid& gid) {
  static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(gid.raw, kPrefix, sizeof(kPrefix)) == 0;
}

// Picks the GID index: explicit, else RoCE v2 IPv4-mapped, else RoCE v2, else 0.
Status SelectGid(ibv_context* ctx, const std::string& name, uint8_t port, int table_len,
                 int requested, PortInfo* info) {
  auto fill = [&](int index, const ibv_gid_entry& e) {
    info->gid_index = static_cast<uint8_t>(index);
    std::memcpy(info->gid.data(), e.gid.raw, 16);
    info->roce_v2 = e.gid_type == IBV_GID_TYPE_ROCE_V2;
  };
  if (requested >= 0) {
    if (requested >= table_len || requested > 255) {
      return Status::InvalidArgument("rdma " + name + ": gid_index " + std::to_string(requested) +
                                     " outside the GID table (" + std::to_string(table_len) +
                                     " entries)");
    }
    ibv_gid_entry e{};
    if (int rc = ibv_query_gid_ex(ctx, port, requested, &e, 0); rc != 0) {
      return Status::Unavailable("rdma " + name + ": ibv_query_gid_ex(port " +
                                 std::to_string(port) + ", index " + std::to_string(requested) +
                                 ") failed: " + ErrnoText(rc));
    }
    fill(requested, e);
    return Status::Ok();
  }
  int best = -1, best_rank = 0;
  ibv_gid_entry best_entry{};
  for (int i = 0; i < table_len && i < 256; ++i) {
    ibv_gid_entry e{};
    if (ibv_query_gid_ex(ctx, port, i, &e, 0) != 0) continue;  // empty slot
    int rank = 1;
    if (e.gid_type == IBV_GID_TYPE_ROCE_V2) rank = IsIpv4Mapped(e.gid) ? 3 : 2;
    if (rank > best_rank) {
      best = i;
      best_rank = rank;
      best_entry = e;
    }
  }
  if (best >= 0) {
    fill(best, best_entry);
  } else {
    info->gid_index = 0;  // InfiniBand without a GID table entry: LID routing
    info->gid.fill(0);
  }
  return Status::Ok();
}

}  // namespace

bool RdmaDevicesPresent(std::string* reason) {
  int count = 0;
  auto list = ListDevices(&count);
  if (!list.ok() && reason != nullptr) *reason = list.status().message();
  return list.ok();
}

Result<std::unique_ptr<RdmaDevice>> RdmaDevice::Open(const RdmaOptions& options) {
  int count = 0;
  KVSTORE_ASSIGN_OR_RETURN(DeviceListPtr list, ListDevices(&count));
  ibv_device* chosen = nullptr;
  for (int i = 0; i < count; ++i) {
    if (options.device_name.empty() || options.device_name == ibv_get_device_name(list.get()[i])) {
      chosen = list.get()[i];
      break;
    }
  }
  if (chosen == nullptr) {
    return Status::Unavailable("RDMA device '" + options.device_name + "' not found among " +
                               std::to_string(count) + " devices; " + kTcpFallback);
  }
  std::unique_ptr<RdmaDevice> dev(new RdmaDevice());
  dev->name_ = ibv_get_device_name(chosen);
  dev->port_ = options.port;
  const std::string where = "rdma " + dev->name_ + ": ";

  errno = 0;
  dev->context_.reset(ibv_open_device(chosen));
  if (!dev->context_) {
    return Status::Unavailable(where + "ibv_open_device failed: " + ErrnoText(errno));
  }
  if (int rc = ibv_query_device(dev->context(), &dev->attr_); rc != 0) {
    return Status::Internal(where + "ibv_query_device failed: " + ErrnoText(rc));
  }
  if (options.port == 0 || options.port > dev->attr_.phys_port_cnt) {
    return Status::InvalidArgument(where + "port " + std::to_string(options.port) + " outside 1.." +
                                   std::to_string(dev->attr_.phys_port_cnt));
  }
  ibv_port_attr pattr{};
  if (int rc = ibv_query_port(dev->context(), options.port, &pattr); rc != 0) {
    return Status::Internal(where + "ibv_query_port(" + std::to_string(options.port) +
                            ") failed: " + ErrnoText(rc));
  }
  if (pattr.state != IBV_PORT_ACTIVE) {
    return Status::Unavailable(where + "port " + std::to_string(options.port) +
                               " is not active (state " + ibv_port_state_str(pattr.state) + "); " +
                               kTcpFallback);
  }
  dev->port_info_.lid = pattr.lid;
  dev->port_info_.active_mtu = pattr.active_mtu;
  dev->port_info_.link_layer = pattr.link_layer;
  dev->port_info_.max_msg_size = pattr.max_msg_sz;
  KVSTORE_RETURN_IF_ERROR(SelectGid(dev->context(), dev->name_, options.port, pattr.gid_tbl_len,
                                    options.gid_index, &dev->port_info_));
  if (pattr.link_layer == IBV_LINK_LAYER_ETHERNET &&
      std::all_of(dev->port_info_.gid.begin(), dev->port_info_.gid.end(),
                  [](uint8_t b) { return b == 0; })) {
    return Status::Unavailable(where + "RoCE port " + std::to_string(options.port) +
                               " has no usable GID (no IP address on the netdev?); " +
                               kTcpFallback);
  }

  errno = 0;
  dev->pd_.reset(ibv_alloc_pd(dev->context()));
  if (!dev->pd_) return Status::Internal(where + "ibv_alloc_pd failed: " + ErrnoText(errno));
  return dev;
}

Result<std::unique_ptr<MemoryRegion>> RdmaDevice::RegisterMemory(void* addr, size_t length,
                                                                 int access) {
  if (addr == nullptr || length == 0) {
    return Status::InvalidArgument("rdma " + name_ + ": RegisterMemory of an empty range");
  }
  errno = 0;
  MrPtr mr(ibv_reg_mr(pd(), addr, length, access));
  if (!mr) {
    const int err = errno;
    std::string m = "rdma " + name_ + ": ibv_reg_mr(" + std::to_string(length) +
                    " bytes) failed: " + ErrnoText(err);
    if (err == ENOMEM) {
      return Status::ResourceExhausted(m + " (locked-memory limit? see ulimit -l)");
    }
    return Status::Internal(m);
  }
  return std::make_unique<MemoryRegion>(std::move(mr));
}

Result<std::unique_ptr<MemoryRegion>> RdmaDevice::RegisterDmabuf(int fd, uint64_t offset,
                                                                 size_t length, uint64_t iova,
                                                                 int access) {
  if (fd < 0 || length == 0) {
    return Status::InvalidArgument("rdma " + name_ + ": RegisterDmabuf needs an fd and a length");
  }
  errno = 0;
  MrPtr mr(ibv_reg_dmabuf_mr(pd(), offset, length, iova, fd, access));
  if (!mr) {
    const int err = errno;
    return Status::Unavailable("rdma " + name_ + ": ibv_reg_dmabuf_mr(fd " + std::to_string(fd) +
                               ", " + std::to_string(length) + " bytes) failed: " + ErrnoText(err));
  }
  return std::make_unique<MemoryRegion>(std::move(mr));
}

}  // namespace kvstore::rdma
