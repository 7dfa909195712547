// ClusterClient's calls over every member: ping, stats and list.
#include "kvstore/cluster/cluster_client.h"

#include <algorithm>
#include <array>

#include <spdlog/spdlog.h>

#include "cluster_internal.h"

namespace kvstore::cluster {

using Clock = std::chrono::steady_clock;
using detail::JoinEndpoints;
using detail::ParallelFor;
using detail::Unreachable;

Status ClusterClient::Ping() {
  auto p = membership();
  if (p->empty()) {
    return Status::Unavailable("cluster " + url_.name + " has no live members in etcd at " +
                               JoinEndpoints(url_));
  }
  for (const auto& m : p->members()) {
    auto client = Node(m.address);
    Status s = client.ok() ? (*client)->Ping() : client.status();
    if (client.ok()) CountCall(m.address, NodeOp::kPing, 0, s);
    if (!s.ok()) return s.WithContext("cluster " + url_.name + " node " + m.address);
  }
  return Status::Ok();
}

Result<StoreStats> ClusterClient::TotalStats() {
  auto p = membership();
  StoreStats total;
  size_t answered = 0;
  for (const auto& m : p->members()) {
    auto client = Node(m.address);
    if (!client.ok()) continue;
    auto s = (*client)->Stats();
    CountCall(m.address, NodeOp::kStats, 0, s.status());
    if (!s.ok()) continue;
    ++answered;
    for (const auto& t : s->tiers) {
      auto it = std::find_if(total.tiers.begin(), total.tiers.end(),
                             [&](const TierStats& x) { return x.tier == t.tier; });
      if (it == total.tiers.end()) {
        total.tiers.push_back(t);
      } else {
        it->entries += t.entries;
        it->bytes += t.bytes;
        it->capacity_bytes += t.capacity_bytes;
        it->used_bytes += t.used_bytes;
      }
    }
    total.waiters += s->waiters;
    total.connections += s->connections;
    total.inserts += s->inserts;
    total.hits += s->hits;
    total.misses += s->misses;
    total.ttl_expired += s->ttl_expired;
    total.evictions += s->evictions;
    total.promotions += s->promotions;
    total.refused_inserts += s->refused_inserts;
    total.checksum_failures += s->checksum_failures;
    total.staged_transfers += s->staged_transfers;
    total.uptime_seconds = std::max(total.uptime_seconds, s->uptime_seconds);
    total.version = s->version;
  }
  if (answered == 0) {
    return Status::Unavailable("no member of cluster " + url_.name + " answered a stats request");
  }
  return total;
}

}  // namespace kvstore::cluster
