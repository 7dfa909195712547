// What a cluster is made of: its address (etcd://...), the record each store
// node keeps in etcd, and where those records live.
//
//   etcd://HOST:PORT[,HOST:PORT...]/NAME
//   /kvstore/NAME/members/NODE_ID  ->  {"id", "address", "transports", "capacity_bytes", ...}
//
// A member record exists while its node's lease is alive: a clean shutdown
// revokes the lease, a crashed node's record goes when the lease expires.
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kvstore/status.h"

namespace kvstore::cluster {

struct ClusterUrl {
  std::vector<std::string> endpoints;  // etcd HOST:PORT, at least one
  std::string name;                    // cluster name; [A-Za-z0-9._-]+
};

// True when `address` names a cluster (starts with "etcd://") rather than one node.
bool IsClusterUrl(std::string_view address);
// InvalidArgument naming what is wrong and the expected form.
Result<ClusterUrl> ParseClusterUrl(std::string_view url);

// "/kvstore/NAME/members/"
std::string MembersPrefix(const ClusterUrl& url);

struct Member {
  std::string id;                       // stable across restarts with the same data dir
  std::string address;                  // HOST:PORT clients connect to (--advertise)
  std::vector<std::string> transports;  // e.g. tcp, local
  uint64_t capacity_bytes = 0;          // memory (+ device) tier: what placement weighs by
  uint64_t spill_bytes = 0;
  std::string metrics;  // HOST:PORT of /metrics, empty when off
  std::string version;
  uint64_t started_unix_ms = 0;

  bool operator==(const Member&) const = default;
};

std::string EncodeMember(const Member& m);
// InvalidArgument when `json` is not a member record (names the field).
Result<Member> DecodeMember(std::string_view json);

}  // namespace kvstore::cluster
