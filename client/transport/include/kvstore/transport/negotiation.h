// Choosing the bulk transport of one connection at hello: the one place that
// decides between tcp, local and rdma. Both ends call Negotiate with what they
// know after the exchange and reach the same Kind.
//
// Protocol use (the Hello exchange): the client says whether it would share
// memory (sharedMemory) and, when it has an RDMA device, puts its encoded
// QpParams in rdmaParams. The server calls Negotiate with the client's hello,
// answers with the chosen kind (bulkTransport) and, only when it chose rdma,
// its own params. The client calls Negotiate with the server's answer and
// checks that the server chose the same. A side that sends params has a
// device, so both reach the same choice.
//
// - Unix socket (same host): local when the client shares memory and the
//   store serves it (not --no-local-transport); tcp (values in the frames) otherwise.
// - TCP: rdma when both ends have a device and the peer's params decode; tcp otherwise.
//
// Thread-safety: Negotiate is pure; ChoiceLog is thread-safe.
#pragma once

#include <cstddef>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "kvstore/rdma/qp_params.h"
#include "kvstore/transport/transport.h"

namespace kvstore::transport {

struct NegotiationInput {
  bool server = true;        // which end is deciding (words the reasons)
  bool unix_socket = false;  // the connection is the daemon's Unix socket
  // Memory sharing (local transport): this end offers it (client: would
  // share; server: serves it), and the other end does.
  bool local_memory = false;
  bool peer_memory = false;
  // RDMA: this end has a device (and sent params), and why not when it has none.
  bool local_rdma = false;
  std::string_view local_rdma_unavailable;
  std::span<const std::byte> peer_rdma_params;  // the other end's QpParams; empty = none
};

struct Choice {
  Kind kind = Kind::kTcp;
  std::string reason;                         // why, for the log line
  std::optional<rdma::QpParams> peer_params;  // set iff kind == kRdma
};

Choice Negotiate(const NegotiationInput& in);

// "bulk transport: <kind> (<reason>)" at info level, once per distinct line
// for the daemon (or client) that owns this log; at most 32 lines are
// remembered, then it stays quiet.
class ChoiceLog {
 public:
  // Returns whether it logged.
  bool LogOnce(std::string_view kind, std::string_view reason);
  bool LogOnce(const Choice& c) { return LogOnce(KindName(c.kind), c.reason); }

 private:
  static constexpr size_t kMaxRemembered = 32;
  std::mutex mu_;
  std::set<std::pair<std::string, std::string>> seen_;  // GUARDED_BY(mu_)
};

}  // namespace kvstore::transport
