#include "node_membership.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>

#include <spdlog/spdlog.h>

#include "kvstore/server/server.h"

namespace kvstore::server {

namespace {

std::string NewNodeId() {
  std::random_device rd;
  std::uniform_int_distribution<uint64_t> dist;
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(dist(rd)));
  return buf;
}

// The id in DATA_DIR/node-id, written there the first time.
Result<std::string> NodeId(const std::string& data_dir) {
  if (data_dir.empty()) {
    std::string id = NewNodeId();
    spdlog::warn(
        "cluster: no --data-dir, so node id {} is new at each start: after a restart this node's "
        "keys get other homes (give it a --data-dir to keep them)",
        id);
    return id;
  }
  namespace fs = std::filesystem;
  const fs::path path = fs::path(data_dir) / "node-id";
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  if (ec)
    return Status::Unavailable("cluster: cannot create --data-dir " + data_dir + ": " +
                               ec.message());
  {
    std::ifstream in(path);
    std::string id;
    if (in && std::getline(in, id) && !id.empty()) return id;
  }
  std::string id = NewNodeId();
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << id << "\n";
    if (!out.flush()) return Status::Unavailable("cluster: cannot write " + tmp.string());
  }
  fs::rename(tmp, path, ec);
  if (ec)
    return Status::Unavailable("cluster: cannot write " + path.string() + ": " + ec.message());
  spdlog::info("cluster: new node id {} (kept in {})", id, path.string());
  return id;
}

}  // namespace

NodeMembershipOptions MembershipOptionsFor(const ServerOptions& o) {
  NodeMembershipOptions m;
  m.cluster = o.cluster;
  m.advertise = o.advertise;
  m.lease_ttl = o.cluster_lease_ttl;
  m.data_dir = o.store.data_dir;
  m.capacity_bytes = o.store.memory_bytes + o.store.device_memory_bytes;
  m.spill_bytes = o.store.spill_bytes;
  m.transports = {"tcp"};
  if (o.local_transport) m.transports.push_back("local");
  m.version = kVersion;
  return m;
}

Result<std::unique_ptr<NodeMembership>> NodeMembership::Create(NodeMembershipOptions options) {
  KVSTORE_ASSIGN_OR_RETURN(cluster::ClusterUrl url, cluster::ParseClusterUrl(options.cluster));
  if (options.lease_ttl.count() < 2) {
    return Status::InvalidArgument("--cluster-lease-ttl must be at least 2s");
  }
  KVSTORE_ASSIGN_OR_RETURN(std::string id, NodeId(options.data_dir));
  std::unique_ptr<NodeMembership> m(new NodeMembership(std::move(options), std::move(url)));
  m->member_.id = std::move(id);
  return m;
}

NodeMembership::NodeMembership(NodeMembershipOptions options, cluster::ClusterUrl url)
    : options_(std::move(options)),
      url_(std::move(url)),
      etcd_(cluster::EtcdOptions{url_.endpoints, std::chrono::milliseconds(2000)}),
      registry_(std::make_shared<prometheus::Registry>()) {
  const prometheus::Labels labels = {{"cluster", url_.name}};
  registered_gauge_ = &prometheus::BuildGauge()
                           .Name("kvstore_cluster_registered")
                           .Help("1 while this node's member record is in etcd under a live lease")
                           .Register(*registry_)
                           .Add(labels);
  etcd_up_gauge_ = &prometheus::BuildGauge()
                        .Name("kvstore_cluster_etcd_reachable")
                        .Help("1 while etcd answers this node")
                        .Register(*registry_)
                        .Add(labels);
  members_gauge_ = &prometheus::BuildGauge()
                        .Name("kvstore_cluster_members")
                        .Help("Members of the cluster as this node last read them from etcd")
                        .Register(*registry_)
                        .Add(labels);
  registrations_ = &prometheus::BuildCounter()
                        .Name("kvstore_cluster_registrations_total")
                        .Help("Times this node registered (at start and after losing its lease)")
                        .Register(*registry_)
                        .Add(labels);
  etcd_errors_ = &prometheus::BuildCounter()
                      .Name("kvstore_cluster_etcd_errors_total")
                      .Help("etcd requests of this node that failed")
                      .Register(*registry_)
                      .Add(labels);
  membership_changes_ = &prometheus::BuildCounter()
                             .Name("kvstore_cluster_membership_changes_total")
                             .Help("Times this node saw the member set change (joins, leaves)")
                             .Register(*registry_)
                             .Add(labels);
}

NodeMembership::~NodeMembership() { Stop(); }

void NodeMembership::Start(const std::string& listen, const std::string& metrics) {
  member_.address = options_.advertise.empty() ? listen : options_.advertise;
  if (member_.address.starts_with("0.0.0.0:") || member_.address.starts_with("[::]:") ||
      member_.address.starts_with(":::")) {
    spdlog::warn(
        "cluster {}: advertising {}, which clients on other hosts cannot dial; pass --advertise "
        "HOST:PORT",
        url_.name, member_.address);
  }
  if (options_.metrics.empty()) options_.metrics = metrics;
  member_.transports = options_.transports;
  member_.capacity_bytes = options_.capacity_bytes;
  member_.spill_bytes = options_.spill_bytes;
  member_.metrics = options_.metrics;
  member_.version = options_.version;
  member_.started_unix_ms =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count());
  thread_ = std::thread([this] { Run(); });
}

void NodeMembership::SetState(bool registered, bool etcd_up, const std::string& why) {
  if (etcd_up != etcd_up_) {
    if (etcd_up) {
      spdlog::info("cluster {}: etcd answers again", url_.name);
    } else {
      spdlog::warn(
          "cluster {}: etcd unreachable ({}); this node keeps serving, and registers again when "
          "etcd answers",
          url_.name, why);
    }
  }
  if (registered != registered_ && !registered && etcd_up) {
    spdlog::warn("cluster {}: lost registration ({}); registering again", url_.name, why);
  }
  registered_ = registered;
  etcd_up_ = etcd_up;
  registered_gauge_->Set(registered ? 1 : 0);
  etcd_up_gauge_->Set(etcd_up ? 1 : 0);
}

bool NodeMembership::Register() {
  auto lease = etcd_.LeaseGrant(options_.lease_ttl);
  if (!lease.ok()) {
    etcd_errors_->Increment();
    SetState(false, !(lease.status().code() == StatusCode::kUnavailable),
             lease.status().ToString());
    return false;
  }
  auto put =
      etcd_.Put(cluster::MembersPrefix(url_) + member_.id, cluster::EncodeMember(member_), *lease);
  if (!put.ok()) {
    etcd_errors_->Increment();
    (void)etcd_.LeaseRevoke(*lease);
    SetState(false, put.status().code() != StatusCode::kUnavailable, put.status().ToString());
    return false;
  }
  lease_ = *lease;
  registrations_->Increment();
  spdlog::info("cluster {}: registered node {} at {} (capacity {} MiB, lease {}s) in etcd at {}",
               url_.name, member_.id, member_.address, member_.capacity_bytes >> 20,
               options_.lease_ttl.count(), url_.endpoints.front());
  SetState(true, true, "");
  return true;
}

void NodeMembership::Run() {
  // Keep-alives three times per TTL: one lost or slow round trip does not cost the lease.
  const auto period = std::chrono::milliseconds(options_.lease_ttl) / 3;
  etcd_up_ = true;
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    if (lease_ == 0) {
      (void)Register();
    } else {
      auto ka = etcd_.LeaseKeepAlive(lease_);
      if (ka.ok()) {
        SetState(true, true, "");
      } else if (ka.status().code() == StatusCode::kNotFound) {
        // etcd was away longer than the TTL (or lost our lease): register anew.
        etcd_errors_->Increment();
        SetState(false, true, ka.status().ToString());
        lease_ = 0;
        (void)Register();
      } else {
        etcd_errors_->Increment();
        SetState(registered_, false, ka.status().ToString());
      }
    }
    // Watch the member set (for the metric and the log).
    auto range = etcd_.RangePrefix(cluster::MembersPrefix(url_));
    if (range.ok()) {
      std::vector<std::string> ids;
      for (const auto& kv : range->kvs) {
        ids.push_back(kv.key.substr(cluster::MembersPrefix(url_).size()));
      }
      std::sort(ids.begin(), ids.end());
      if (ids != seen_members_) {
        if (!seen_members_.empty()) membership_changes_->Increment();
        spdlog::info("cluster {}: {} members", url_.name, ids.size());
        seen_members_ = std::move(ids);
      }
      members_gauge_->Set(static_cast<double>(seen_members_.size()));
    }
    lock.lock();
    wake_.wait_for(lock, registered_ ? period : std::chrono::milliseconds(500),
                   [&] { return stopping_; });
  }
  lock.unlock();
  Revoke();  // leaving: clients stop placing keys here at their next membership read
}

void NodeMembership::Leave() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
}

void NodeMembership::Stop() {
  Leave();
  if (thread_.joinable()) thread_.join();
  Revoke();
}

void NodeMembership::Revoke() {
  if (lease_ != 0) {
    Status s = etcd_.LeaseRevoke(lease_);
    if (s.ok()) {
      spdlog::info("cluster {}: left (lease revoked)", url_.name);
    } else {
      spdlog::warn("cluster {}: could not revoke the lease ({}); the record goes when it expires",
                   url_.name, s.ToString());
    }
    lease_ = 0;
  }
}

}  // namespace kvstore::server
