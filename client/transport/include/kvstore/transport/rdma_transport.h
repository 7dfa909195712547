// The rdma transport: the store posts RDMA READ (insert) and RDMA WRITE
// (select) on an RC queue pair connected to the client's, against memory the
// client registered with its NIC. Built on client/rdma (device, queue pair,
// wire encodings); see transport.h for the model both transports share.
//
// Thread-safety: the RemoteAccess belongs to one connection's strand; the
// client endpoint is used by one connection at a time; the exporter is
// thread-safe (libibverbs serializes registrations).
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "kvstore/rdma/device.h"
#include "kvstore/rdma/queue_pair.h"
#include "kvstore/transport/transport.h"

namespace kvstore::transport {

// The lkey of the store registration covering [addr, addr + len); InvalidArgument
// when no registration covers it (the bytes are not in a registered arena).
using LocalKeyFn = std::function<Result<uint32_t>(const void* addr, size_t len)>;
// Runs `fn` later on the connection's strand (completion polling runs there).
using PostFn = std::function<void(std::function<void()>)>;

// The store's side: creates a queue pair on `device`, connects it to the
// client's parameters (from Hello), and serves Read/Write with it. The reply
// to Hello carries HelloReplyParams().
Result<std::unique_ptr<RemoteAccess>> AcceptRdma(rdma::RdmaDevice& device,
                                                 std::span<const std::byte> client_params,
                                                 LocalKeyFn local_lkey, PostFn post);

// The client's side of one connection: a queue pair the store drives (the
// client posts nothing and polls nothing).
class RdmaClientEndpoint {
 public:
  static Result<std::unique_ptr<RdmaClientEndpoint>> Create(
      std::shared_ptr<rdma::RdmaDevice> device);
  std::vector<std::byte> HelloParams() const;  // for Hello.rdmaParams
  // Connects to the store's queue pair (HelloReply.rdmaParams).
  Status Connect(std::span<const std::byte> server_params);

 private:
  RdmaClientEndpoint() = default;
  std::shared_ptr<rdma::RdmaDevice> device_;
  std::unique_ptr<rdma::QueuePair> qp_;
};

// Registers caller memory with `device` (one memory region per export).
std::unique_ptr<RegionExporter> MakeRdmaExporter(std::shared_ptr<rdma::RdmaDevice> device);

}  // namespace kvstore::transport
