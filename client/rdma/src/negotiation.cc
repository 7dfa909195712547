#include "kvstore/rdma/negotiation.h"

#include <spdlog/spdlog.h>

#include <mutex>
#include <set>
#include <utility>

namespace kvstore::rdma {

std::string_view BulkTransportName(BulkTransport t) {
  return t == BulkTransport::kRdma ? "rdma" : "tcp";
}

TransportChoice NegotiateBulkTransport(bool local_rdma_available,
                                       std::span<const std::byte> peer_params,
                                       std::string_view local_unavailable_reason) {
  TransportChoice c;
  if (!local_rdma_available) {
    c.reason = "no local RDMA device";
    if (!local_unavailable_reason.empty()) {
      c.reason += ": ";
      c.reason += local_unavailable_reason;
    }
    return c;
  }
  if (peer_params.empty()) {
    c.reason = "peer has no RDMA device";
    return c;
  }
  auto decoded = QpParams::Decode(peer_params);
  if (!decoded.ok()) {
    c.reason = "peer's RDMA parameters rejected: " + decoded.status().message();
    return c;
  }
  c.transport = BulkTransport::kRdma;
  c.reason = "both ends have RDMA devices";
  c.peer_params = std::move(decoded).value();
  return c;
}

bool LogTransportChoiceOnce(std::string_view transport, std::string_view reason) {
  static constexpr size_t kMaxRemembered = 32;
  static std::mutex mu;
  static std::set<std::pair<std::string, std::string>> seen;  // GUARDED_BY(mu)
  {
    std::lock_guard<std::mutex> lock(mu);
    if (seen.size() >= kMaxRemembered) return false;
    if (!seen.emplace(std::string(transport), std::string(reason)).second) return false;
  }
  spdlog::info("bulk transport: {} ({})", transport, reason);
  return true;
}

bool LogTransportChoiceOnce(const TransportChoice& choice) {
  return LogTransportChoiceOnce(BulkTransportName(choice.transport), choice.reason);
}

}  // namespace kvstore::rdma
