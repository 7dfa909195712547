// A kvstored node's membership in a cluster (kvstored --cluster etcd://.../NAME):
// registers this node's record (address, transports, capacity, a node id kept
// in the data dir so it survives restarts) under the cluster's prefix in etcd,
// with a lease it keeps alive; Stop() (clean shutdown) revokes the lease so
// clients stop placing keys here at once, a crash lets the lease expire.
//
// etcd unreachable: the node keeps serving, logs once per state change, sets
// kvstore_cluster_registered 0, and registers again when etcd answers (a new
// lease if the old one expired meanwhile).
//
// Thread-safety: Start/Stop from one thread; the keep-alive runs on its own thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "kvstore/cluster/etcd_client.h"
#include "kvstore/cluster/membership.h"
#include "kvstore/server/server_options.h"
#include "kvstore/status.h"

namespace kvstore::server {

struct NodeMembershipOptions {
  std::string cluster;                 // etcd://HOST:PORT[,HOST:PORT...]/NAME
  std::string advertise;               // HOST:PORT clients reach this node at
  std::chrono::seconds lease_ttl{10};  // a crashed node leaves the membership after this
  std::string data_dir;         // node id lives in DATA_DIR/node-id; empty = new id each start
  uint64_t capacity_bytes = 0;  // what placement weighs this node by
  uint64_t spill_bytes = 0;
  std::vector<std::string> transports;  // e.g. tcp, local
  std::string metrics;                  // HOST:PORT of /metrics, empty when off
  std::string version;
};

// From kvstored's options: capacity (memory + device tiers), spill, transports, data dir.
NodeMembershipOptions MembershipOptionsFor(const ServerOptions& o);

class NodeMembership {
 public:
  // Checks the options and reads (or creates) the node id; talks to etcd only in Start().
  static Result<std::unique_ptr<NodeMembership>> Create(NodeMembershipOptions options);
  ~NodeMembership();  // Stop()s

  // Registers (or keeps trying to, logging why) from a thread of its own.
  // `listen` (the bound --listen) is advertised unless options.advertise is set;
  // `metrics`: the bound /metrics address, recorded for operators.
  void Start(const std::string& listen, const std::string& metrics);
  // Asks the keep-alive thread to revoke the lease and stop; returns at once.
  void Leave();
  // Leave()s and waits: the lease is revoked (best effort, bounded by the etcd
  // timeout) when it returns.
  void Stop();

  const std::string& node_id() const { return member_.id; }
  // Gauges and counters of the membership; register with the /metrics exposer.
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

 private:
  explicit NodeMembership(NodeMembershipOptions options, cluster::ClusterUrl url);
  void Run();
  bool Register();  // grant + put; false when etcd failed
  void Revoke();    // the lease, if any; on the keep-alive thread or after it ended
  void SetState(bool registered, bool etcd_up, const std::string& why);

  NodeMembershipOptions options_;
  cluster::ClusterUrl url_;
  cluster::Member member_;
  cluster::EtcdClient etcd_;

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Gauge* registered_gauge_;
  prometheus::Gauge* etcd_up_gauge_;
  prometheus::Gauge* members_gauge_;
  prometheus::Counter* registrations_;
  prometheus::Counter* etcd_errors_;
  prometheus::Counter* membership_changes_;

  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;  // GUARDED_BY(mu_)
  int64_t lease_ = 0;      // owned by the thread until Stop joins it
  bool registered_ = false;
  bool etcd_up_ = true;
  std::vector<std::string> seen_members_;  // ids, sorted; owned by the thread
  std::thread thread_;
};

}  // namespace kvstore::server
