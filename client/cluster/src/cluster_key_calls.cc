// ClusterClient's calls on keys alone: match_prefix, retain, remove, show.
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

Result<ClusterClient::NodeCounts> ClusterClient::CountPerNode(std::span<const Key> keys,
                                                              const std::string& node, NodeOp op,
                                                              CountFn call) {
  auto p = membership();
  NodeCounts out;
  KVSTORE_ASSIGN_OR_RETURN(out.groups, Group(keys, node, *p));
  out.counts.assign(out.groups.size(), size_t{0});
  ParallelFor(out.groups.size(), [&](size_t g) {
    std::vector<Key> sub;
    for (size_t i : out.groups[g].second) sub.push_back(keys[i]);
    auto client = Node(out.groups[g].first);
    out.counts[g] = client.ok() ? call(**client, sub) : Result<size_t>(client.status());
    if (client.ok()) CountCall(out.groups[g].first, op, 0, out.counts[g].status());
  });
  for (const auto& c : out.counts) {
    if (!c.ok() && !Unreachable(c.status())) return c.status();  // unreachable: holds nothing
  }
  return out;
}

// The first key some node lacks: a node's count stops at its first absent key,
// and every key before the overall first absent one is present.
size_t ClusterClient::NodeCounts::Leading(size_t n) const {
  size_t leading = n;
  for (size_t g = 0; g < groups.size(); ++g) {
    size_t c = counts[g].ok() ? *counts[g] : 0;
    if (c < groups[g].second.size()) leading = std::min(leading, groups[g].second[c]);
  }
  return leading;
}

Result<size_t> ClusterClient::MatchPrefix(std::span<const Key> keys, const std::string& node) {
  KVSTORE_ASSIGN_OR_RETURN(NodeCounts n, CountPerNode(keys, node, NodeOp::kMatchPrefix,
                                                      [](Client& c, std::span<const Key> sub) {
                                                        return c.MatchPrefix(sub);
                                                      }));
  return n.Leading(keys.size());
}

Result<size_t> ClusterClient::Retain(std::span<const Key> keys, const std::string& node) {
  KVSTORE_ASSIGN_OR_RETURN(size_t stored, MatchPrefix(keys, node));
  auto head = keys.first(stored);
  KVSTORE_ASSIGN_OR_RETURN(NodeCounts n, CountPerNode(head, node, NodeOp::kRetain,
                                                      [](Client& c, std::span<const Key> sub) {
                                                        return c.Retain(sub);
                                                      }));
  return n.Leading(head.size());
}

Result<size_t> ClusterClient::Remove(std::span<const Key> keys, const std::string& node) {
  KVSTORE_ASSIGN_OR_RETURN(NodeCounts n, CountPerNode(keys, node, NodeOp::kRemove,
                                                      [](Client& c, std::span<const Key> sub) {
                                                        return c.Remove(sub);
                                                      }));
  size_t removed = 0;
  for (const auto& c : n.counts) removed += c.ok() ? *c : 0;
  return removed;
}

Result<EntryInfo> ClusterClient::Show(const Key& key, const std::string& node) {
  auto p = membership();
  KVSTORE_ASSIGN_OR_RETURN(std::string target, Target(key, node, *p));
  auto client = Node(target);
  if (!client.ok()) {
    return Status::NotFound("node " + target +
                            " holding the key is unreachable: " + client.status().message());
  }
  auto r = (*client)->Show(key);
  CountCall(target, NodeOp::kShow, 0, r.status());
  return r;
}

}  // namespace kvstore::cluster
