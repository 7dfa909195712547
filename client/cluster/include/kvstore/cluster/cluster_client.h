// ClusterClient: libkvstore over a cluster of kvstored nodes whose membership
// lives in etcd. No master on the data path: this client reads the membership,
// keeps it fresh from an etcd watch stream (each change re-reads the members;
// a broken or compacted watch is reopened after a full re-read; while no watch
// can be opened it polls, keeping the last membership it saw while etcd is
// unreachable) and places every key itself (see placement.h), so all clients
// with the same membership agree on every key's home.
//
// Placements (ClusterClientOptions::placement):
//   hash   a cluster-wide store and prefix cache: each key lives at its
//          rendezvous home; capacity pools across nodes and any engine finds
//          any block. A handoff costs two hops (producer -> home -> consumer).
//   local  a producer writes to its own node (options.local_node); the consumer
//          is told that node by the request (the `node` argument, as vLLM
//          passes kv_transfer_params) and pulls from it alone: one network hop
//          per handoff, no pooling of capacity or prefix reuse across nodes.
//
// Batch calls group keys by node, run the groups in parallel and reassemble
// the results in key order. Per-node connections open on first use and are
// pooled (a kvstore::Client per node).
//
// Loss of a node is a miss, never a wrong answer or a hang: its keys read as
// absent (match_prefix stops there, select is NotFound), calls that must reach
// it (insert, drop_select) fail at once with Unavailable, and after one failed
// connection it is skipped for `node_retry_interval` instead of being dialled
// by every call. When its lease expires it leaves the membership and its keys'
// homes move to the rest.
//
// drop_select while the membership changes (the defined behaviour): a waiting
// drop_select re-checks its keys' homes every `reissue_interval` (it waits on
// a node in slices of that length; a slice that times out has taken nothing).
//   - the node it waits on left the cluster: fail Unavailable at once (what the
//     node held is gone; the engine recomputes), instead of waiting out the timeout;
//   - a node joined and took the key's home: the key is taken from the old
//     home if the producer already put it there, else the wait moves to the
//     new home, where a producer with the new membership will put it.
// Keys of one drop_select that live on different nodes are handed over per
// node: each node's share goes to exactly one caller, but two callers racing
// for the same multi-node batch can each win a part (never the same key).
//
// Thread-safety: thread-safe, like Client.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kvstore/client.h"
#include "kvstore/cluster/etcd_client.h"
#include "kvstore/cluster/membership.h"
#include "kvstore/cluster/placement.h"

namespace kvstore::cluster {

enum class PlacementKind : uint8_t { kHash = 0, kLocal = 1 };
std::string_view PlacementKindName(PlacementKind p);
// "hash" or "local"; InvalidArgument otherwise.
Result<PlacementKind> ParsePlacementKind(std::string_view text);

struct ClusterClientOptions {
  std::string url;  // etcd://HOST:PORT[,HOST:PORT...]/NAME
  // Options of the per-node connections (address is ignored; token, timeouts,
  // transport and max_connections apply to each node).
  ClientOptions node;
  PlacementKind placement = PlacementKind::kHash;
  // local placement: HOST:PORT of this producer's own node (as it advertises
  // itself); inserts go there. Empty with local placement: InvalidArgument.
  std::string local_node;
  // Follow membership changes on an etcd watch stream; false = poll only.
  bool watch = true;
  // Membership re-read from etcd this often while no watch stream is open
  // (etcd down or the watch refused), or always when !watch.
  std::chrono::milliseconds poll_interval{250};
  std::chrono::milliseconds reissue_interval{500};      // drop_select re-checks homes this often
  std::chrono::milliseconds node_retry_interval{1000};  // a node that refused is skipped this long
  std::chrono::milliseconds etcd_timeout{2000};         // per etcd request
};

// What a call to one node was, for the per-node traffic counters.
enum class NodeOp : uint8_t {
  kInsert,
  kSelect,
  kDropSelect,
  kMatchPrefix,
  kRetain,
  kRemove,
  kShow,
  kList,
  kStats,
  kPing,
  kInsertMany,
};
inline constexpr size_t kNodeOps = 11;
// "insert", "select", "drop_select", ... (the daemon's op names).
std::string_view NodeOpName(NodeOp op);

// What this client sees of the membership and what it sent where.
struct ClusterClientStats {
  size_t members = 0;
  int64_t revision = 0;             // etcd revision of the membership in use
  bool etcd_reachable = false;      // the last membership read succeeded
  bool watching = false;            // a watch stream is open (else membership is polled)
  uint64_t membership_changes = 0;  // times the member set changed
  uint64_t joins = 0;               // members that appeared after the first read
  uint64_t leaves = 0;              // members that disappeared
  uint64_t etcd_failures = 0;       // membership reads that failed
  struct Op {
    NodeOp op = NodeOp::kInsert;
    uint64_t requests = 0;  // calls of this op sent to the node
    uint64_t bytes = 0;     // value bytes sent (insert) or received (select, drop_select)
    uint64_t failures = 0;  // of them, failed with Unavailable
  };
  struct Node {
    std::string address;
    uint64_t requests = 0;  // calls sent to this node (every op)
    uint64_t failures = 0;  // calls or connections that failed with Unavailable
    std::vector<Op> ops;    // the ops sent at least once
  };
  std::vector<Node> nodes;  // every node this client has talked to
};

// A page of ClusterClient::List: entries with the node that holds each.
struct ClusterListPage {
  std::vector<EntryInfo> entries;
  std::vector<std::string> nodes;      // per entry: HOST:PORT of the node holding it
  std::vector<std::byte> next_cursor;  // empty = every node listed to its end
  std::vector<std::string> skipped;    // nodes that could not be reached (their entries missing)
};

class ClusterClient {
 public:
  // Reads the membership once (Unavailable when no etcd endpoint answers);
  // an empty cluster is fine (calls fail Unavailable until nodes join).
  static Result<std::unique_ptr<ClusterClient>> Connect(const ClusterClientOptions& options);
  ~ClusterClient();
  ClusterClient(const ClusterClient&) = delete;
  ClusterClient& operator=(const ClusterClient&) = delete;

  // The data calls have Client's contract. `node` (HOST:PORT) names the node
  // that holds the keys, as a consumer in the local placement is told; empty =
  // this client's placement decides (hash: the rendezvous home; local: the
  // local node).
  Result<bool> Insert(const Key& key, std::span<const std::byte> value,
                      const InsertOptions& options = {});
  // One insert_many per node, with the items placement puts there (the nodes
  // in parallel); results in `items` order. A node that cannot be reached or
  // refuses its request fails only its own items (Unavailable and so on, with
  // the node named); the call fails as a whole only when no node can be placed.
  Result<std::vector<Result<bool>>> InsertMany(std::span<const InsertItem> items,
                                               const InsertOptions& options = {});
  Result<std::vector<Entry>> Select(std::span<const Key> keys, const std::string& node = {});
  Result<std::vector<EntryInfo>> SelectInto(std::span<const Key> keys,
                                            std::span<const std::span<std::byte>> destinations,
                                            const std::string& node = {});
  Result<std::vector<Entry>> DropSelect(std::span<const Key> keys,
                                        std::chrono::milliseconds timeout,
                                        const std::string& node = {});
  Result<std::vector<EntryInfo>> DropSelectInto(std::span<const Key> keys,
                                                std::span<const std::span<std::byte>> destinations,
                                                std::chrono::milliseconds timeout,
                                                const std::string& node = {});
  // Leading stored keys across the nodes; a node that cannot be reached holds nothing.
  Result<size_t> MatchPrefix(std::span<const Key> keys, const std::string& node = {});
  Result<size_t> Retain(std::span<const Key> keys, const std::string& node = {});
  Result<size_t> Remove(std::span<const Key> keys, const std::string& node = {});
  Result<EntryInfo> Show(const Key& key, const std::string& node = {});

  // Client's whole-store calls through a cluster address.
  Status Ping();  // Ok when every member answers; else names the first that does not
  Result<StoreStats> TotalStats();  // summed over the members that answer
  // Every live node's entries, a page at a time: each page asks the nodes not
  // yet listed to their end in parallel (the limit shared among them) and
  // lists them in address order. The cursor holds each node's own cursor, so
  // the next page resumes every node where it stopped; a node that joined
  // since starts from its beginning, one that left is dropped, and one that
  // cannot be reached is skipped (named in `skipped`). InvalidArgument for a
  // cursor that is not from a cluster list.
  Result<ClusterListPage> List(const ListOptions& options);

  // Operators.
  std::shared_ptr<const Placement> membership() const;
  // Blocks until at least `n` members are seen (Timeout otherwise).
  Status WaitForMembers(size_t n, std::chrono::milliseconds timeout);
  // The home of `key` under the current membership (hash placement); Unavailable when empty.
  Result<Member> Home(const Key& key) const;
  // The per-node client (opened on first use, pooled); Unavailable when it cannot connect.
  Result<std::shared_ptr<Client>> Node(const std::string& address);
  ClusterClientStats Stats() const;
  const ClusterClientOptions& options() const { return options_; }

 private:
  struct NodeState;
  explicit ClusterClient(ClusterClientOptions options, ClusterUrl url);
  Status Refresh();
  // Follows membership changes: the watch stream, else polling (see the header).
  void FollowLoop();
  // Where `key` goes for this call (see `node` above).
  Result<std::string> Target(const Key& key, const std::string& node,
                             const Placement& placement) const;
  // Groups key indices by target node, in first-seen order.
  Result<std::vector<std::pair<std::string, std::vector<size_t>>>> Group(
      std::span<const Key> keys, const std::string& node, const Placement& placement) const;
  Result<std::vector<EntryInfo>> SelectImpl(bool drop, std::span<const Key> keys,
                                            std::chrono::milliseconds timeout,
                                            const std::string& node,
                                            std::span<const std::span<std::byte>> dsts,
                                            std::vector<Entry>* owned);
  // Counts one call of `op` to `address` that moved `bytes` of values; an
  // Unavailable `result` also marks the node down for node_retry_interval.
  void CountCall(const std::string& address, NodeOp op, uint64_t bytes, const Status& result);
  // A counting call (match_prefix, retain, remove) on each node's share of `keys`.
  struct NodeCounts {
    std::vector<std::pair<std::string, std::vector<size_t>>> groups;
    std::vector<Result<size_t>> counts;  // per group; Unavailable = the node holds nothing
    // Leading keys of `n` every node counted (see MatchPrefix).
    size_t Leading(size_t n) const;
  };
  using CountFn = std::function<Result<size_t>(Client&, std::span<const Key>)>;
  Result<NodeCounts> CountPerNode(std::span<const Key> keys, const std::string& node, NodeOp op,
                                  CountFn call);

  ClusterClientOptions options_;
  ClusterUrl url_;
  EtcdClient etcd_;
  EtcdWatch watch_;  // used by FollowLoop's thread; Stop from the destructor

  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::shared_ptr<const Placement> placement_;  // GUARDED_BY(mu_)
  int64_t revision_ = 0;                        // GUARDED_BY(mu_)
  int64_t revision_seen_ = 0;        // GUARDED_BY(mu_): revision of the first membership read
  bool etcd_reachable_ = false;      // GUARDED_BY(mu_)
  bool watching_ = false;            // GUARDED_BY(mu_)
  uint64_t membership_changes_ = 0;  // GUARDED_BY(mu_)
  uint64_t joins_ = 0;               // GUARDED_BY(mu_)
  uint64_t leaves_ = 0;              // GUARDED_BY(mu_)
  uint64_t etcd_failures_ = 0;       // GUARDED_BY(mu_)
  bool stopping_ = false;            // GUARDED_BY(mu_)
  std::map<std::string, std::shared_ptr<NodeState>> nodes_;  // GUARDED_BY(mu_), by address

  std::thread follower_;  // last: started once everything above exists
};

// Client::Connect's path for an etcd:// address:
//   etcd://HOST:PORT[,HOST:PORT...]/NAME[?placement=hash|local&node=HOST:PORT]
// (node: the local placement's own node). The other ClientOptions apply to
// each node's connections. Waits up to connect_timeout for a first member
// (Unavailable otherwise), so processes started together find each other.
Result<std::unique_ptr<ClusterClient>> ConnectClusterAddress(const ClientOptions& options);

}  // namespace kvstore::cluster
