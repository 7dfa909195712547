#include "kvstore/transport/rdma_transport.h"

#include <chrono>
#include <unordered_map>

namespace kvstore::transport {

namespace {

class RdmaRemoteAccess final : public RemoteAccess {
 public:
  RdmaRemoteAccess(std::unique_ptr<rdma::QueuePair> qp, LocalKeyFn lkey, PostFn post)
      : qp_(std::move(qp)), lkey_(std::move(lkey)), post_(std::move(post)) {}
  // Destroying the queue pair stops the NIC touching local memory; callers
  // destroy this before freeing slots a transfer may still target.
  ~RdmaRemoteAccess() override = default;

  Kind kind() const override { return Kind::kRdma; }
  std::vector<std::byte> HelloReplyParams() const override { return qp_->LocalParams().Encode(); }

  void Read(const RemoteRange& src, std::span<std::byte> dst, Done done) override {
    Start(true, dst.data(), dst.size(), src.addr, std::move(done));
  }
  void Write(std::span<const std::byte> src, const RemoteRange& dst, Done done) override {
    Start(false, src.data(), src.size(), dst.addr, std::move(done));
  }

 private:
  void Start(bool read, const std::byte* local, size_t len, rdma::RemoteAddress remote, Done done) {
    auto lkey = lkey_(local, len);
    if (!lkey.ok()) {
      done(lkey.status());
      return;
    }
    rdma::LocalSge sge{reinterpret_cast<uintptr_t>(local), len, *lkey};
    uint64_t wr_id = ++next_wr_id_;
    Status posted =
        read ? qp_->PostRead({&sge, 1}, remote, wr_id) : qp_->PostWrite({&sge, 1}, remote, wr_id);
    if (!posted.ok()) {
      done(posted);
      return;
    }
    pending_.emplace(wr_id, std::move(done));
    SchedulePoll();
  }

  void SchedulePoll() {
    if (polling_) return;
    polling_ = true;
    post_([this] { Poll(); });
  }

  // Polls once, completes what finished, and comes back while transfers are in
  // flight (other work on the strand runs in between).
  void Poll() {
    polling_ = false;
    auto got = qp_->PollCompletions(32, std::chrono::milliseconds(0));
    if (!got.ok()) {
      auto failed = std::move(pending_);
      pending_.clear();
      for (auto& [id, done] : failed) done(got.status());
      return;
    }
    for (auto& c : *got) {
      auto it = pending_.find(c.wr_id);
      if (it == pending_.end()) continue;
      Done done = std::move(it->second);
      pending_.erase(it);
      done(c.status);
    }
    if (!pending_.empty()) SchedulePoll();
  }

  std::unique_ptr<rdma::QueuePair> qp_;
  LocalKeyFn lkey_;
  PostFn post_;
  uint64_t next_wr_id_ = 0;
  bool polling_ = false;
  std::unordered_map<uint64_t, Done> pending_;
};

class RdmaExporter final : public RegionExporter {
 public:
  explicit RdmaExporter(std::shared_ptr<rdma::RdmaDevice> device) : device_(std::move(device)) {}
  Kind kind() const override { return Kind::kRdma; }
  Result<ExportedRegion> Export(std::span<std::byte> memory) override {
    if (memory.empty()) return Status::InvalidArgument("cannot export an empty region");
    KVSTORE_ASSIGN_OR_RETURN(std::unique_ptr<rdma::MemoryRegion> mr,
                             device_->RegisterMemory(memory.data(), memory.size()));
    std::vector<std::byte> descriptor = mr->ToRemote().Encode();
    return ExportedRegion{std::move(descriptor),
                          std::shared_ptr<rdma::MemoryRegion>(std::move(mr))};
  }

 private:
  std::shared_ptr<rdma::RdmaDevice> device_;
};

}  // namespace

Result<std::unique_ptr<RemoteAccess>> AcceptRdma(rdma::RdmaDevice& device,
                                                 std::span<const std::byte> client_params,
                                                 LocalKeyFn local_lkey, PostFn post) {
  KVSTORE_ASSIGN_OR_RETURN(rdma::QpParams peer, rdma::QpParams::Decode(client_params));
  KVSTORE_ASSIGN_OR_RETURN(std::unique_ptr<rdma::QueuePair> qp, rdma::QueuePair::Create(device));
  KVSTORE_RETURN_IF_ERROR(qp->Connect(peer));
  return std::unique_ptr<RemoteAccess>(
      new RdmaRemoteAccess(std::move(qp), std::move(local_lkey), std::move(post)));
}

Result<std::unique_ptr<RdmaClientEndpoint>> RdmaClientEndpoint::Create(
    std::shared_ptr<rdma::RdmaDevice> device) {
  std::unique_ptr<RdmaClientEndpoint> e(new RdmaClientEndpoint());
  KVSTORE_ASSIGN_OR_RETURN(e->qp_, rdma::QueuePair::Create(*device));
  e->device_ = std::move(device);
  return e;
}

std::vector<std::byte> RdmaClientEndpoint::HelloParams() const {
  return qp_->LocalParams().Encode();
}

Status RdmaClientEndpoint::Connect(std::span<const std::byte> server_params) {
  KVSTORE_ASSIGN_OR_RETURN(rdma::QpParams peer, rdma::QpParams::Decode(server_params));
  return qp_->Connect(peer);
}

std::unique_ptr<RegionExporter> MakeRdmaExporter(std::shared_ptr<rdma::RdmaDevice> device) {
  return std::make_unique<RdmaExporter>(std::move(device));
}

}  // namespace kvstore::transport
