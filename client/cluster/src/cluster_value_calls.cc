// ClusterClient's calls that move values: insert, select and drop_select
// (with its re-placement while the membership changes; see the header).
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

Result<bool> ClusterClient::Insert(const Key& key, std::span<const std::byte> value,
                                   const InsertOptions& options) {
  auto p = membership();
  KVSTORE_ASSIGN_OR_RETURN(std::string target, Target(key, {}, *p));
  KVSTORE_ASSIGN_OR_RETURN(auto client, Node(target));
  auto r = client->Insert(key, value, options);
  CountCall(target, NodeOp::kInsert, r.ok() ? value.size() : 0, r.status());
  return r;
}

Result<std::vector<Result<bool>>> ClusterClient::InsertMany(std::span<const InsertItem> items,
                                                            const InsertOptions& options) {
  std::vector<Result<bool>> results(items.size(), Result<bool>(false));
  if (items.empty()) return results;
  std::vector<Key> keys;
  keys.reserve(items.size());
  for (const InsertItem& item : items) keys.push_back(item.key);
  auto p = membership();
  KVSTORE_ASSIGN_OR_RETURN(auto groups, Group(keys, {}, *p));
  ParallelFor(groups.size(), [&](size_t g) {
    // Named members, not a structured binding: clang 14 cannot capture one in a lambda.
    const std::string& address = groups[g].first;
    const std::vector<size_t>& idx = groups[g].second;
    auto fail_all = [&](const Status& s) {
      for (size_t i : idx) results[i] = s;
    };
    auto client = Node(address);  // its error names the node
    if (!client.ok()) {
      fail_all(client.status());
      return;
    }
    std::vector<InsertItem> sub;
    sub.reserve(idx.size());
    for (size_t i : idx) sub.push_back(items[i]);
    auto r = (*client)->InsertMany(sub, options);
    uint64_t bytes = 0;
    if (r.ok()) {
      for (size_t j = 0; j < idx.size(); ++j) {
        if ((*r)[j].ok()) bytes += sub[j].value.size();
        results[idx[j]] = std::move((*r)[j]);
      }
    }
    CountCall(address, NodeOp::kInsertMany, bytes, r.status());
    if (!r.ok()) {
      fail_all(r.status().WithContext("insert_many of " + std::to_string(idx.size()) +
                                      " keys on cluster " + url_.name + " node " + address));
    }
  });
  return results;
}

Result<std::vector<Entry>> ClusterClient::Select(std::span<const Key> keys,
                                                 const std::string& node) {
  std::vector<Entry> owned(keys.size());
  KVSTORE_RETURN_IF_ERROR(SelectImpl(false, keys, {}, node, {}, &owned).status());
  return owned;
}

Result<std::vector<EntryInfo>> ClusterClient::SelectInto(
    std::span<const Key> keys, std::span<const std::span<std::byte>> destinations,
    const std::string& node) {
  if (destinations.size() != keys.size()) {
    return Status::InvalidArgument("select_into: " + std::to_string(keys.size()) + " keys but " +
                                   std::to_string(destinations.size()) + " buffers");
  }
  return SelectImpl(false, keys, {}, node, destinations, nullptr);
}

Result<std::vector<Entry>> ClusterClient::DropSelect(std::span<const Key> keys,
                                                     std::chrono::milliseconds timeout,
                                                     const std::string& node) {
  std::vector<Entry> owned(keys.size());
  KVSTORE_RETURN_IF_ERROR(SelectImpl(true, keys, timeout, node, {}, &owned).status());
  return owned;
}

Result<std::vector<EntryInfo>> ClusterClient::DropSelectInto(
    std::span<const Key> keys, std::span<const std::span<std::byte>> destinations,
    std::chrono::milliseconds timeout, const std::string& node) {
  if (destinations.size() != keys.size()) {
    return Status::InvalidArgument("drop_select_into: " + std::to_string(keys.size()) +
                                   " keys but " + std::to_string(destinations.size()) + " buffers");
  }
  return SelectImpl(true, keys, timeout, node, destinations, nullptr);
}

namespace {

using NodeGroups = std::vector<std::pair<std::string, std::vector<size_t>>>;

// Adds key index `i` to `node`'s group, opening it after the others if new.
void AddToGroup(NodeGroups& groups, const std::string& node, size_t i) {
  auto it =
      std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == node; });
  if (it == groups.end()) {
    groups.emplace_back(node, std::vector<size_t>{i});
  } else {
    it->second.push_back(i);
  }
}

}  // namespace

Result<std::vector<EntryInfo>> ClusterClient::SelectImpl(bool drop, std::span<const Key> keys,
                                                         std::chrono::milliseconds timeout,
                                                         const std::string& node,
                                                         std::span<const std::span<std::byte>> dsts,
                                                         std::vector<Entry>* owned) {
  std::vector<EntryInfo> infos(keys.size());
  // One node's share of the keys, waiting at most `wait` (drop) on it.
  auto run = [&](const std::string& address, const std::vector<size_t>& idx,
                 std::chrono::milliseconds wait) -> Status {
    std::vector<Key> sub;
    sub.reserve(idx.size());
    for (size_t i : idx) sub.push_back(keys[i]);
    KVSTORE_ASSIGN_OR_RETURN(auto client, Node(address));
    Status st;
    uint64_t bytes = 0;
    if (owned != nullptr) {
      auto r = drop ? client->DropSelect(sub, wait) : client->Select(sub);
      st = r.status();
      if (r.ok()) {
        for (size_t j = 0; j < idx.size(); ++j) {
          bytes += (*r)[j].value.size();
          infos[idx[j]] = {(*r)[j].key, (*r)[j].meta};
          (*owned)[idx[j]] = std::move((*r)[j]);
        }
      }
    } else {
      std::vector<std::span<std::byte>> sub_dst;
      sub_dst.reserve(idx.size());
      for (size_t i : idx) sub_dst.push_back(dsts[i]);
      auto r = drop ? client->DropSelectInto(sub, sub_dst, wait) : client->SelectInto(sub, sub_dst);
      st = r.status();
      if (r.ok()) {
        for (size_t j = 0; j < idx.size(); ++j) {
          bytes += (*r)[j].meta.size;
          infos[idx[j]] = std::move((*r)[j]);
        }
      }
    }
    CountCall(address, drop ? NodeOp::kDropSelect : NodeOp::kSelect, bytes, st);
    return st;
  };

  if (!drop) {
    auto p = membership();
    KVSTORE_ASSIGN_OR_RETURN(auto groups, Group(keys, node, *p));
    std::vector<Status> results(groups.size());
    ParallelFor(groups.size(),
                [&](size_t g) { results[g] = run(groups[g].first, groups[g].second, {}); });
    for (size_t g = 0; g < groups.size(); ++g) {
      if (results[g].ok()) continue;
      if (Unreachable(results[g])) {
        return Status::NotFound("select: the node holding some keys, " + groups[g].first +
                                ", is unreachable (a miss: recompute): " + results[g].message());
      }
      return results[g];
    }
    return infos;
  }

  // drop_select: wait in slices, re-placing pending keys between them (see the header).
  const auto deadline = Clock::now() + timeout;
  std::vector<bool> done(keys.size(), false);
  std::vector<std::string> waited_on(keys.size());  // node of the previous slice
  std::shared_ptr<const Placement> prev;
  while (true) {
    auto p = membership();
    std::vector<size_t> pending;
    for (size_t i = 0; i < keys.size(); ++i) {
      if (!done[i]) pending.push_back(i);
    }
    // Homes that moved since the last slice.
    NodeGroups moved;
    NodeGroups groups;
    for (size_t i : pending) {
      KVSTORE_ASSIGN_OR_RETURN(std::string target, Target(keys[i], node, *p));
      const std::string& before = waited_on[i];
      if (prev != nullptr && !before.empty() && prev->FindByAddress(before) != nullptr &&
          p->FindByAddress(before) == nullptr) {
        return Status::Unavailable("drop_select: node " + before + " left cluster " + url_.name +
                                   " while this call waited on it; what it held is lost "
                                   "(recompute)");
      }
      if (!before.empty() && before != target) AddToGroup(moved, before, i);
      AddToGroup(groups, target, i);
      waited_on[i] = target;
    }
    prev = p;
    // Keys a joiner took over: the producer may have put them at the old home already.
    for (const auto& [old_home, idx] : moved) {
      if (run(old_home, idx, std::chrono::milliseconds{0}).ok()) {
        for (size_t i : idx) done[i] = true;
      }
    }
    for (auto& g : groups) {
      std::erase_if(g.second, [&](size_t i) { return done[i]; });
    }
    std::erase_if(groups, [](const auto& g) { return g.second.empty(); });
    if (groups.empty()) return infos;

    auto now = Clock::now();
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
    if (left.count() < 0) left = std::chrono::milliseconds{0};
    const auto slice = std::min(left, options_.reissue_interval);
    std::vector<Status> results(groups.size());
    ParallelFor(groups.size(),
                [&](size_t g) { results[g] = run(groups[g].first, groups[g].second, slice); });
    for (size_t g = 0; g < groups.size(); ++g) {
      if (results[g].ok()) {
        for (size_t i : groups[g].second) done[i] = true;
      } else if (results[g].code() != StatusCode::kTimeout) {
        return results[g].WithContext("drop_select on node " + groups[g].first);
      }
    }
    if (std::all_of(done.begin(), done.end(), [](bool d) { return d; })) return infos;
    if (Clock::now() >= deadline) {
      return Status::Timeout("drop_select waited " + std::to_string(timeout.count()) +
                             " ms and its keys were not all inserted on their nodes (cluster " +
                             url_.name + "); the producer may be slow or gone: recompute");
    }
  }
}

}  // namespace kvstore::cluster
