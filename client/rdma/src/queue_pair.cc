#include "kvstore/rdma/queue_pair.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <random>
#include <thread>

#include "byte_io.h"

namespace kvstore::rdma {

using internal::ErrnoText;

std::string WcStatusName(int status) {
  switch (status) {
#define KVSTORE_WC_CASE_(s) \
  case s:                   \
    return #s;
    KVSTORE_WC_CASE_(IBV_WC_SUCCESS)
    KVSTORE_WC_CASE_(IBV_WC_LOC_LEN_ERR)
    KVSTORE_WC_CASE_(IBV_WC_LOC_QP_OP_ERR)
    KVSTORE_WC_CASE_(IBV_WC_LOC_EEC_OP_ERR)
    KVSTORE_WC_CASE_(IBV_WC_LOC_PROT_ERR)
    KVSTORE_WC_CASE_(IBV_WC_WR_FLUSH_ERR)
    KVSTORE_WC_CASE_(IBV_WC_MW_BIND_ERR)
    KVSTORE_WC_CASE_(IBV_WC_BAD_RESP_ERR)
    KVSTORE_WC_CASE_(IBV_WC_LOC_ACCESS_ERR)
    KVSTORE_WC_CASE_(IBV_WC_REM_INV_REQ_ERR)
    KVSTORE_WC_CASE_(IBV_WC_REM_ACCESS_ERR)
    KVSTORE_WC_CASE_(IBV_WC_REM_OP_ERR)
    KVSTORE_WC_CASE_(IBV_WC_RETRY_EXC_ERR)
    KVSTORE_WC_CASE_(IBV_WC_RNR_RETRY_EXC_ERR)
    KVSTORE_WC_CASE_(IBV_WC_LOC_RDD_VIOL_ERR)
    KVSTORE_WC_CASE_(IBV_WC_REM_INV_RD_REQ_ERR)
    KVSTORE_WC_CASE_(IBV_WC_REM_ABORT_ERR)
    KVSTORE_WC_CASE_(IBV_WC_INV_EECN_ERR)
    KVSTORE_WC_CASE_(IBV_WC_INV_EEC_STATE_ERR)
    KVSTORE_WC_CASE_(IBV_WC_FATAL_ERR)
    KVSTORE_WC_CASE_(IBV_WC_RESP_TIMEOUT_ERR)
    KVSTORE_WC_CASE_(IBV_WC_GENERAL_ERR)
    KVSTORE_WC_CASE_(IBV_WC_TM_ERR)
    KVSTORE_WC_CASE_(IBV_WC_TM_RNDV_INCOMPLETE)
#undef KVSTORE_WC_CASE_
  }
  return "IBV_WC_" + std::to_string(status);
}

Status WcToStatus(const ibv_wc& wc, const std::string& device_name) {
  if (wc.status == IBV_WC_SUCCESS) return Status::Ok();
  // wc.opcode is only valid on success, so the message does not name it.
  char vendor[32];
  std::snprintf(vendor, sizeof(vendor), "0x%x", wc.vendor_err);
  // ibv_wc_status_str returns "unknown" for values it does not know.
  std::string m = "RDMA transfer wr_id=" + std::to_string(wc.wr_id) + " on " + device_name +
                  " qp " + std::to_string(wc.qp_num) + ": " + ibv_wc_status_str(wc.status) + " (" +
                  WcStatusName(wc.status) + ", vendor_err " + vendor + ")";
  switch (wc.status) {
    case IBV_WC_WR_FLUSH_ERR:
    case IBV_WC_RETRY_EXC_ERR:
    case IBV_WC_RNR_RETRY_EXC_ERR:
    case IBV_WC_RESP_TIMEOUT_ERR:
    case IBV_WC_REM_ABORT_ERR:
      return Status::Unavailable(std::move(m));
    case IBV_WC_REM_ACCESS_ERR:
    case IBV_WC_REM_INV_REQ_ERR:
    case IBV_WC_REM_INV_RD_REQ_ERR:
    case IBV_WC_LOC_PROT_ERR:
    case IBV_WC_LOC_ACCESS_ERR:
    case IBV_WC_LOC_LEN_ERR:
      return Status::InvalidArgument(std::move(m));
    default:
      return Status::Internal(std::move(m));
  }
}

Result<std::unique_ptr<QueuePair>> QueuePair::Create(RdmaDevice& device, const QpOptions& options) {
  std::unique_ptr<QueuePair> qp(new QueuePair(device, options));
  const std::string where = "rdma " + device.name() + ": ";
  const ibv_device_attr& attr = device.attr();
  const auto clamp = [](uint32_t want, int max) {
    return std::max<uint32_t>(1, std::min<uint32_t>(want, static_cast<uint32_t>(std::max(max, 1))));
  };
  const uint32_t cq_depth = clamp(options.cq_depth, attr.max_cqe);
  qp->max_send_wr_ = std::min(clamp(options.max_send_wr, attr.max_qp_wr), cq_depth);
  qp->max_sge_ = clamp(options.max_send_sge, attr.max_sge);
  qp->chunk_bytes_ = std::min<size_t>(options.chunk_bytes, size_t{1} << 31);
  if (device.port_info().max_msg_size > 0) {
    qp->chunk_bytes_ = std::min<size_t>(qp->chunk_bytes_, device.port_info().max_msg_size);
  }
  if (qp->chunk_bytes_ == 0) return Status::InvalidArgument(where + "chunk_bytes 0");

  errno = 0;
  qp->cq_.reset(ibv_create_cq(device.context(), static_cast<int>(cq_depth), nullptr, nullptr, 0));
  if (!qp->cq_) {
    return Status::Internal(where + "ibv_create_cq(" + std::to_string(cq_depth) +
                            ") failed: " + ErrnoText(errno));
  }
  ibv_qp_init_attr init{};
  init.send_cq = qp->cq_.get();
  init.recv_cq = qp->cq_.get();
  init.qp_type = IBV_QPT_RC;
  init.sq_sig_all = 0;
  init.cap.max_send_wr = qp->max_send_wr_;
  init.cap.max_recv_wr = clamp(options.max_recv_wr, attr.max_qp_wr);
  init.cap.max_send_sge = qp->max_sge_;
  init.cap.max_recv_sge = 1;
  errno = 0;
  qp->qp_.reset(ibv_create_qp(device.pd(), &init));
  if (!qp->qp_) {
    return Status::Internal(where + "ibv_create_qp(RC, send_wr " +
                            std::to_string(qp->max_send_wr_) + ", sge " +
                            std::to_string(qp->max_sge_) + ") failed: " + ErrnoText(errno));
  }
  // The provider may round capacities; use what it granted.
  qp->max_send_wr_ = std::min(qp->max_send_wr_, init.cap.max_send_wr);
  qp->max_sge_ = std::max<uint32_t>(1, std::min(qp->max_sge_, init.cap.max_send_sge));

  std::random_device rd;
  QpParams& p = qp->local_;
  p.qpn = qp->qp_->qp_num;
  p.psn = rd() & kMaxQpn;
  p.lid = device.port_info().lid;
  p.gid = device.port_info().gid;
  p.gid_index = device.port_info().gid_index;
  p.port = device.port();
  p.mtu = PathMtu(device.port_info().active_mtu, options.max_mtu);
  p.max_rd_atomic = static_cast<uint8_t>(
      std::clamp<int>(std::min<int>(options.max_rd_atomic, attr.max_qp_rd_atom), 1, 255));
  return qp;
}

Status QueuePair::Connect(const QpParams& remote) {
  const std::string where = "rdma " + device_.name() + " qp " + std::to_string(local_.qpn) + ": ";
  if (connected_) return Status::InvalidArgument(where + "already connected");
  if (remote.qpn == 0 || remote.qpn > kMaxQpn || MtuBytes(remote.mtu) == 0) {
    return Status::InvalidArgument(where + "bad remote params " + remote.ToString());
  }
  auto modify = [&](ibv_qp_attr& a, int mask, const char* to) -> Status {
    if (int rc = ibv_modify_qp(qp_.get(), &a, mask); rc != 0) {
      return Status::Unavailable(where + "ibv_modify_qp to " + to + " failed: " + ErrnoText(rc) +
                                 " (remote " + remote.ToString() + ")");
    }
    return Status::Ok();
  };

  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_INIT;
  a.pkey_index = 0;
  a.port_num = local_.port;
  a.qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE;
  KVSTORE_RETURN_IF_ERROR(
      modify(a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS, "INIT"));

  a = {};
  a.qp_state = IBV_QPS_RTR;
  a.path_mtu = PathMtu(PathMtu(local_.mtu, remote.mtu), options_.max_mtu);
  a.dest_qp_num = remote.qpn;
  a.rq_psn = remote.psn;
  a.max_dest_rd_atomic = local_.max_rd_atomic;  // READs we serve for the peer
  a.min_rnr_timer = options_.min_rnr_timer;
  a.ah_attr.dlid = remote.lid;
  a.ah_attr.sl = options_.service_level;
  a.ah_attr.port_num = local_.port;
  if (remote.HasGid()) {
    a.ah_attr.is_global = 1;
    std::copy(remote.gid.begin(), remote.gid.end(), a.ah_attr.grh.dgid.raw);
    a.ah_attr.grh.sgid_index = local_.gid_index;
    a.ah_attr.grh.hop_limit = options_.hop_limit;
    a.ah_attr.grh.traffic_class = options_.traffic_class;
  }
  KVSTORE_RETURN_IF_ERROR(modify(a,
                                 IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
                                     IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC |
                                     IBV_QP_MIN_RNR_TIMER,
                                 "RTR"));

  a = {};
  a.qp_state = IBV_QPS_RTS;
  a.timeout = options_.timeout;
  a.retry_cnt = options_.retry_cnt;
  a.rnr_retry = options_.rnr_retry;
  a.sq_psn = local_.psn;
  // READs we issue: no more than the peer accepts.
  a.max_rd_atomic = std::min(local_.max_rd_atomic, remote.max_rd_atomic);
  KVSTORE_RETURN_IF_ERROR(modify(a,
                                 IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
                                     IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC,
                                 "RTS"));
  connected_ = true;
  return Status::Ok();
}

Status QueuePair::PostRead(std::span<const LocalSge> local, RemoteAddress remote, uint64_t wr_id) {
  return Post(IBV_WR_RDMA_READ, local, remote, wr_id);
}

Status QueuePair::PostWrite(std::span<const LocalSge> local, RemoteAddress remote, uint64_t wr_id) {
  return Post(IBV_WR_RDMA_WRITE, local, remote, wr_id);
}

Status QueuePair::Post(ibv_wr_opcode opcode, std::span<const LocalSge> local, RemoteAddress remote,
                       uint64_t wr_id) {
  const char* op = opcode == IBV_WR_RDMA_READ ? "RDMA READ" : "RDMA WRITE";
  const std::string where =
      "rdma " + device_.name() + " " + op + " wr_id=" + std::to_string(wr_id) + ": ";
  if (!connected_) return Status::Unavailable(where + "queue pair not connected");
  if (broken_) return Status::Unavailable(where + "queue pair failed earlier; reconnect");
  if (in_flight_.count(wr_id) != 0) return Status::InvalidArgument(where + "wr_id in flight");
  KVSTORE_ASSIGN_OR_RETURN(auto chunks, PlanChunks(local, remote.addr, {chunk_bytes_, max_sge_}));
  if (chunks.size() > max_send_wr_ - wrs_outstanding_) {
    if (chunks.size() > max_send_wr_) {
      return Status::InvalidArgument(where + std::to_string(chunks.size()) +
                                     " work requests exceed the send queue (" +
                                     std::to_string(max_send_wr_) + "); split the transfer");
    }
    return Status::ResourceExhausted(where + "send queue full; poll completions and retry");
  }
  std::vector<ibv_sge> sges;
  size_t total_sges = 0;
  for (const auto& c : chunks) total_sges += c.sges.size();
  sges.reserve(total_sges);
  std::vector<ibv_send_wr> wrs(chunks.size());
  for (size_t i = 0; i < chunks.size(); ++i) {
    ibv_send_wr& wr = wrs[i];
    wr.wr_id = wr_id;
    wr.opcode = opcode;
    wr.sg_list = sges.data() + sges.size();
    wr.num_sge = static_cast<int>(chunks[i].sges.size());
    for (const auto& s : chunks[i].sges) {
      sges.push_back({s.addr, static_cast<uint32_t>(s.length), s.lkey});
    }
    wr.wr.rdma.remote_addr = chunks[i].remote_addr;
    wr.wr.rdma.rkey = remote.rkey;
    // Only the last request is signaled; errors complete regardless.
    wr.send_flags = i + 1 == chunks.size() ? IBV_SEND_SIGNALED : 0;
    wr.next = i + 1 == chunks.size() ? nullptr : &wrs[i + 1];
  }
  ibv_send_wr* bad = nullptr;
  if (int rc = ibv_post_send(qp_.get(), wrs.data(), &bad); rc != 0) {
    const size_t posted = bad == nullptr ? 0 : static_cast<size_t>(bad - wrs.data());
    if (posted > 0) broken_ = true;  // unsignaled requests in flight with no completion to come
    return Status::Unavailable(where + "ibv_post_send failed at request " + std::to_string(posted) +
                               " of " + std::to_string(chunks.size()) + ": " + ErrnoText(rc));
  }
  wrs_outstanding_ += static_cast<uint32_t>(chunks.size());
  in_flight_[wr_id] = static_cast<uint32_t>(chunks.size());
  return Status::Ok();
}

Result<std::vector<Completion>> QueuePair::PollCompletions(int max,
                                                           std::chrono::milliseconds timeout) {
  std::vector<Completion> out;
  if (max <= 0) return out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  ibv_wc wcs[32];
  for (;;) {
    const int want = std::min<int>(max - static_cast<int>(out.size()), 32);
    const int n = ibv_poll_cq(cq_.get(), want, wcs);
    if (n < 0) {
      return Status::Internal("rdma " + device_.name() +
                              ": ibv_poll_cq failed: " + ErrnoText(-n > 0 ? -n : errno));
    }
    for (int i = 0; i < n; ++i) {
      auto it = in_flight_.find(wcs[i].wr_id);
      // After an error, the transfer's unsignaled requests are flushed too;
      // the transfer was already reported, so its later completions are dropped.
      if (it == in_flight_.end()) continue;
      wrs_outstanding_ -= std::min(wrs_outstanding_, it->second);
      in_flight_.erase(it);
      out.push_back({wcs[i].wr_id, WcToStatus(wcs[i], device_.name())});
      if (!out.back().status.ok()) broken_ = true;
    }
    if (static_cast<int>(out.size()) >= max) break;
    if (!out.empty() && n < want) break;
    if (std::chrono::steady_clock::now() >= deadline) break;
    if (n == 0) std::this_thread::yield();
  }
  if (out.empty() && timeout.count() > 0) {
    return Status::Timeout("rdma " + device_.name() + ": no completion within " +
                           std::to_string(timeout.count()) + " ms (" +
                           std::to_string(in_flight_.size()) + " transfers in flight)");
  }
  return out;
}

}  // namespace kvstore::rdma
