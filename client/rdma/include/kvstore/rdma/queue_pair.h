// QueuePair: one reliable-connected (RC) queue pair with its own completion
// queue, used by the store to post RDMA READ (pull an insert's bytes) and
// RDMA WRITE (push a select's bytes) against a peer's registered buffers.
//
// Life: Create() -> exchange LocalParams() over the control connection ->
// Connect(remote) -> PostRead/PostWrite -> PollCompletions. A transfer larger
// than one work request is split (see transfer_plan.h); only its last work
// request is signaled, so each transfer yields exactly one Completion with the
// caller's wr_id. Every verbs failure, including every ibv_wc error status,
// becomes a Status naming the call, the device, the wr_id and the verbs error
// string; after a completion error the QP is in the error state and the caller
// should fail its transfers and reconnect.
//
// Thread-safety: not thread-safe; one thread (the connection's) owns a QP.
// REQUIRES: the RdmaDevice outlives the QueuePair.
#pragma once

#include <infiniband/verbs.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "kvstore/rdma/device.h"
#include "kvstore/rdma/qp_params.h"
#include "kvstore/rdma/remote_region.h"
#include "kvstore/rdma/transfer_plan.h"
#include "kvstore/rdma/verbs_handles.h"
#include "kvstore/status.h"

namespace kvstore::rdma {

struct QpOptions {
  uint32_t max_send_wr = 256;      // send queue depth (clamped to the device)
  uint32_t max_recv_wr = 1;        // no SENDs are used; keep the RQ minimal
  uint32_t max_send_sge = 16;      // clamped to the device's max_sge
  uint32_t cq_depth = 512;         // clamped to the device's max_cqe
  uint8_t max_rd_atomic = 16;      // READs in flight each way; clamped to the device
  size_t chunk_bytes = 1 << 20;    // bytes per work request (1 MiB)
  ibv_mtu max_mtu = IBV_MTU_4096;  // path MTU cap
  uint8_t timeout = 14;            // local ACK timeout: 4.096 us * 2^14 ~= 67 ms
  uint8_t retry_cnt = 7;           // transport retries before IBV_WC_RETRY_EXC_ERR
  uint8_t rnr_retry = 7;           // 7 = retry forever
  uint8_t min_rnr_timer = 12;      // 0.64 ms
  uint8_t service_level = 0;
  uint8_t traffic_class = 0;  // GRH traffic class (RoCE DSCP << 2)
  uint8_t hop_limit = 64;     // GRH hop limit
};

// The outcome of one transfer.
struct Completion {
  uint64_t wr_id = 0;
  Status status;  // OK, or the verbs status turned into a Status
};

// Maps a work completion to a Status: OK for IBV_WC_SUCCESS; otherwise a
// message "<op> wr_id=<id> on <device>: <ibv_wc_status_str> (<enum name>,
// vendor_err 0x..)" with a code telling the caller what to do: Unavailable
// for retry-exceeded/flush (peer gone: reconnect), InvalidArgument for remote
// access/protection errors (a bad rkey/offset from the peer), Internal else.
Status WcToStatus(const ibv_wc& wc, const std::string& device_name);
// "IBV_WC_REM_ACCESS_ERR" etc.; "IBV_WC_<n>" for unknown values.
std::string WcStatusName(int status);

class QueuePair {
 public:
  static Result<std::unique_ptr<QueuePair>> Create(RdmaDevice& device,
                                                   const QpOptions& options = {});

  // What the peer needs to connect to this QP (send it in Hello).
  const QpParams& LocalParams() const { return local_; }

  // RESET -> INIT -> RTR -> RTS against `remote`. Path MTU is the smaller of
  // both ends and options.max_mtu; a GRH is used when the remote has a GID.
  Status Connect(const QpParams& remote);

  // Pull remote bytes into `local` (READ) or push `local` to the remote (WRITE).
  // `remote` is the start of one contiguous remote range of the same total
  // length, already bounds-checked with ResolveRemote().
  // ResourceExhausted when the send queue has no room (poll, then retry);
  // InvalidArgument for a bad list or a wr_id already in flight.
  Status PostRead(std::span<const LocalSge> local, RemoteAddress remote, uint64_t wr_id);
  Status PostWrite(std::span<const LocalSge> local, RemoteAddress remote, uint64_t wr_id);

  // Up to `max` transfer completions. Polls until at least one arrives or the
  // timeout passes (Timeout then); 0 ms polls once and returns what is there.
  Result<std::vector<Completion>> PollCompletions(int max, std::chrono::milliseconds timeout);

  // The largest single transfer Post* accepts when the send queue is empty:
  // send queue depth x chunk size (fewer bytes if a transfer has more local
  // pieces than max_send_sge per chunk). Split bigger values into several
  // transfers (default options: 256 x 1 MiB = 256 MiB).
  size_t max_transfer_bytes() const { return size_t{max_send_wr_} * chunk_bytes_; }
  // Transfers posted and not yet completed.
  size_t in_flight() const { return in_flight_.size(); }
  bool connected() const { return connected_; }

 private:
  QueuePair(RdmaDevice& device, const QpOptions& options) : device_(device), options_(options) {}
  Status Post(ibv_wr_opcode opcode, std::span<const LocalSge> local, RemoteAddress remote,
              uint64_t wr_id);

  RdmaDevice& device_;
  QpOptions options_;
  QpParams local_;
  uint32_t max_send_wr_ = 0;
  uint32_t max_sge_ = 1;
  size_t chunk_bytes_ = 1 << 20;
  bool connected_ = false;
  bool broken_ = false;  // a post partly failed; the QP must be reconnected
  uint32_t wrs_outstanding_ = 0;
  std::unordered_map<uint64_t, uint32_t> in_flight_;  // wr_id -> work requests
  // The QP goes before its CQ.
  CqPtr cq_;
  QpPtr qp_;
};

}  // namespace kvstore::rdma
