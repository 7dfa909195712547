// Choosing the bulk transport of one connection: RDMA only when both ends
// have a device and the peer's queue-pair parameters decode; TCP otherwise.
//
// Protocol use (the Hello exchange): each end puts its encoded QpParams in
// rdmaParams when it has an RDMA device, nothing otherwise. The server calls
// NegotiateBulkTransport with the client's bytes and answers with its own
// params only when it chose RDMA (empty otherwise); the client then calls it
// with the server's answer. Both ends reach the same choice because a side
// that sends params has a device. A client that gets params it cannot decode
// must fail the handshake: the server has already chosen RDMA.
//
// Thread-safety: NegotiateBulkTransport is pure; LogTransportChoiceOnce is
// thread-safe.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "kvstore/rdma/qp_params.h"

namespace kvstore::rdma {

enum class BulkTransport { kTcp, kRdma };

std::string_view BulkTransportName(BulkTransport t);  // "tcp" / "rdma"

struct TransportChoice {
  BulkTransport transport = BulkTransport::kTcp;
  std::string reason;                   // why, for the log line
  std::optional<QpParams> peer_params;  // set iff transport == kRdma
};

// `local_unavailable_reason` is what RdmaDevice::Open said when it failed
// (used in the reason when local_rdma_available is false).
TransportChoice NegotiateBulkTransport(bool local_rdma_available,
                                       std::span<const std::byte> peer_params,
                                       std::string_view local_unavailable_reason = "");

// Logs "bulk transport: <tcp|rdma> (<reason>)" at info level the first time a
// given transport/reason pair is seen in this process; returns whether it
// logged. At most 32 distinct lines are remembered, then it stays quiet.
bool LogTransportChoiceOnce(const TransportChoice& choice);
// The same for any transport name ("local" too).
bool LogTransportChoiceOnce(std::string_view transport, std::string_view reason);

}  // namespace kvstore::rdma
