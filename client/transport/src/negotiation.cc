#include "kvstore/transport/negotiation.h"

#include <spdlog/spdlog.h>

namespace kvstore::transport {

namespace {

Choice OnUnixSocket(const NegotiationInput& in) {
  const bool client_shares = in.server ? in.peer_memory : in.local_memory;
  const bool store_serves = in.server ? in.local_memory : in.peer_memory;
  if (client_shares && store_serves) {
    return {Kind::kLocal,
            "same-host client on the Unix socket: values move through memfd memory it shares "
            "with the store",
            std::nullopt};
  }
  return {Kind::kTcp,
          client_shares ? "local transport disabled on this kvstored (--no-local-transport); "
                          "values travel in the Unix socket's frames"
                        : "the same-host client shares no memory; values travel in the Unix "
                          "socket's frames",
          std::nullopt};
}

}  // namespace

Choice Negotiate(const NegotiationInput& in) {
  if (in.unix_socket) return OnUnixSocket(in);
  Choice c;
  if (!in.local_rdma) {
    c.reason = "no local RDMA device";
    if (!in.local_rdma_unavailable.empty()) {
      c.reason += ": ";
      c.reason += in.local_rdma_unavailable;
    }
    return c;
  }
  if (in.peer_rdma_params.empty()) {
    c.reason = "peer has no RDMA device";
    return c;
  }
  auto decoded = rdma::QpParams::Decode(in.peer_rdma_params);
  if (!decoded.ok()) {
    c.reason = "peer's RDMA parameters rejected: " + decoded.status().message();
    return c;
  }
  c.kind = Kind::kRdma;
  c.reason = "both ends have RDMA devices";
  c.peer_params = std::move(decoded).value();
  return c;
}

bool ChoiceLog::LogOnce(std::string_view kind, std::string_view reason) {
  {
    std::lock_guard lock(mu_);
    if (seen_.size() >= kMaxRemembered) return false;
    if (!seen_.emplace(std::string(kind), std::string(reason)).second) return false;
  }
  spdlog::info("bulk transport: {} ({})", kind, reason);
  return true;
}

}  // namespace kvstore::transport
