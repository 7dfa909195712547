// The hardware a daemon may use: the GPU behind the device tier and the RDMA
// device with the arenas registered to it, each said once at start.
#include <spdlog/spdlog.h>

#include "kvstore/device/arena_registration.h"
#include "kvstore/units.h"
#include "server_impl.h"

namespace kvstore::server {

void Server::Impl::LogHardware() {
  const uint64_t asked = options_.store.device_memory_bytes;
  if (store_->has_device_tier()) {
    spdlog::info(
        "gpu: {}; device tier: {} in {}; committed values go there first and move to the "
        "host tier above {:.0f}% full",
        gpu_.reason, FormatSize(asked), store_->DescribeDevice(),
        options_.store.high_watermark * 100);
  } else if (asked == 0) {
    spdlog::info("gpu: {}; no device tier (--device-memory 0), values live in the host arena",
                 gpu_.reason);
  } else if (!gpu_.available()) {
    spdlog::warn(
        "gpu: {}; device tier absent although --device-memory {} was given: values live in "
        "the host arena (run on a machine with a GPU and its driver, or drop the flag)",
        gpu_.reason, FormatSize(asked));
  } else {
    spdlog::warn(
        "gpu: {}; device tier absent: --device-memory {} could not be set up: {}; values live "
        "in the host arena (lower --device-memory or free GPU memory)",
        gpu_.reason, FormatSize(asked), device_error_);
  }
}

void Server::Impl::SetUpRdma(std::span<std::byte> arena, const device::DeviceArena* device_arena) {
  std::string why;
  if (!rdma::RdmaDevicesPresent(&why)) {
    ctx_.rdma_unavailable = why;
    spdlog::info("rdma: {}", why);
    return;
  }
  auto device = rdma::RdmaDevice::Open();
  if (!device.ok()) {
    ctx_.rdma_unavailable = device.status().message();
    spdlog::warn("rdma: cannot open the device: {}; bulk transfers use tcp",
                 device.status().ToString());
    return;
  }
  auto mr = (*device)->RegisterMemory(arena.data(), arena.size());
  if (!mr.ok()) {
    ctx_.rdma_unavailable = "host arena registration failed: " + mr.status().message();
    spdlog::warn(
        "rdma: registering the {} host arena with {} failed: {}; bulk transfers use "
        "tcp (check `ulimit -l` / LimitMEMLOCK for the daemon)",
        FormatSize(arena.size()), (*device)->name(), mr.status().ToString());
    return;
  }
  rdma_device_ = std::move(device).value();
  arena_mr_ = std::move(mr).value();
  // The device tier's arena too (dmabuf, else peer memory), so queue pairs
  // can reach GPU memory; values in it are still staged to the host arena
  // before they are served.
  if (device_arena != nullptr) {
    auto reg = device::RegisterArena(*rdma_device_, *device_arena);
    if (reg.ok()) {
      spdlog::info("rdma: device-tier arena registered ({}{})",
                   reg->method == device::RegistrationMethod::kDmabuf ? "dmabuf" : "peer memory",
                   reg->note.empty() ? "" : ": " + reg->note);
      device_mr_ = std::move(reg->region);
    } else {
      spdlog::warn(
          "rdma: the device-tier arena could not be registered with {}: {}; its "
          "values reach clients through the host arena",
          rdma_device_->name(), reg.status().ToString());
    }
  }
  struct Range {
    const std::byte* base;
    size_t len;
    uint32_t lkey;
  };
  std::vector<Range> ranges{
      {static_cast<const std::byte*>(arena_mr_->addr()), arena_mr_->length(), arena_mr_->lkey()}};
  if (device_mr_) {
    ranges.push_back({static_cast<const std::byte*>(device_mr_->addr()), device_mr_->length(),
                      device_mr_->lkey()});
  }
  const size_t len = arena_mr_->length();
  ctx_.rdma_available = true;
  ctx_.rdma_device = rdma_device_.get();
  ctx_.rdma_local_lkey = [ranges](const void* p, size_t n) -> Result<uint32_t> {
    const auto* b = static_cast<const std::byte*>(p);
    for (const Range& r : ranges) {
      if (b >= r.base && n <= r.len && b - r.base <= static_cast<ptrdiff_t>(r.len - n)) {
        return r.lkey;
      }
    }
    return Status::InvalidArgument("rdma: buffer is outside every registered arena");
  };
  spdlog::info(
      "rdma: {} port {}, host arena of {} registered; clients with an RDMA device "
      "get one-sided transfers",
      rdma_device_->name(), rdma_device_->port(), FormatSize(len));
}

}  // namespace kvstore::server
