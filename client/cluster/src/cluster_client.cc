#include "kvstore/cluster/cluster_client.h"

#include <algorithm>
#include <array>
#include <future>

#include <spdlog/spdlog.h>

namespace kvstore::cluster {

using Clock = std::chrono::steady_clock;

std::string_view PlacementKindName(PlacementKind p) {
  return p == PlacementKind::kLocal ? "local" : "hash";
}

Result<PlacementKind> ParsePlacementKind(std::string_view text) {
  if (text == "hash") return PlacementKind::kHash;
  if (text == "local") return PlacementKind::kLocal;
  return Status::InvalidArgument(
      "placement '" + std::string(text) +
      "' is neither 'hash' (cluster-wide) nor 'local' (producer's node)");
}

std::string_view NodeOpName(NodeOp op) {
  static constexpr std::string_view kNames[kNodeOps] = {
      "insert", "select", "drop_select", "match_prefix", "retain",
      "remove", "show",   "list",        "stats",        "ping"};
  return kNames[static_cast<size_t>(op)];
}

// One node this client talks to: its pooled Client, opened on first use.
struct ClusterClient::NodeState {
  std::mutex mu;                   // serializes opening the connection
  std::shared_ptr<Client> client;  // GUARDED_BY(mu)
  Clock::time_point down_until{};  // GUARDED_BY(mu): skip dialling until then
  // Counters only (no ordering with other data): relaxed.
  std::atomic<uint64_t> connect_failures{0};
  struct OpCounters {
    std::atomic<uint64_t> requests{0}, bytes{0}, failures{0};
  };
  std::array<OpCounters, kNodeOps> ops;
};

namespace {

// Runs fn(i) for i in [0, n): the first on this thread, the rest in parallel.
template <typename Fn>
void ParallelFor(size_t n, Fn&& fn) {
  if (n == 0) return;
  std::vector<std::future<void>> rest;
  rest.reserve(n - 1);
  for (size_t i = 1; i < n; ++i) rest.push_back(std::async(std::launch::async, fn, i));
  fn(size_t{0});
  for (auto& f : rest) f.get();
}

bool Unreachable(const Status& s) { return s.code() == StatusCode::kUnavailable; }

std::string JoinEndpoints(const ClusterUrl& url) {
  std::string out;
  for (const auto& e : url.endpoints) out += (out.empty() ? "" : ",") + e;
  return out;
}

}  // namespace

ClusterClient::ClusterClient(ClusterClientOptions options, ClusterUrl url)
    : options_(std::move(options)),
      url_(std::move(url)),
      etcd_(EtcdOptions{url_.endpoints, options_.etcd_timeout}),
      placement_(std::make_shared<Placement>()) {}

ClusterClient::~ClusterClient() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (poller_.joinable()) poller_.join();
}

Result<std::unique_ptr<ClusterClient>> ClusterClient::Connect(const ClusterClientOptions& options) {
  KVSTORE_ASSIGN_OR_RETURN(ClusterUrl url, ParseClusterUrl(options.url));
  if (options.placement == PlacementKind::kLocal && options.local_node.empty()) {
    return Status::InvalidArgument(
        "local placement needs the producer's own node (ClusterClientOptions::local_node, "
        "HOST:PORT as the node advertises itself)");
  }
  std::unique_ptr<ClusterClient> c(new ClusterClient(options, std::move(url)));
  KVSTORE_RETURN_IF_ERROR(c->Refresh().WithContext("reading the membership of " + options.url));
  c->poller_ = std::thread([p = c.get()] { p->PollLoop(); });
  return c;
}

Status ClusterClient::Refresh() {
  auto range = etcd_.RangePrefix(MembersPrefix(url_));
  std::lock_guard lock(mu_);
  if (!range.ok()) {
    ++etcd_failures_;
    if (etcd_reachable_ || etcd_failures_ == 1) {
      spdlog::warn(
          "cluster {}: etcd at {} unreachable ({}); placing keys by the last membership seen "
          "({} nodes) until it answers again",
          url_.name, JoinEndpoints(url_), range.status().ToString(), placement_->members().size());
    }
    etcd_reachable_ = false;
    return range.status();
  }
  if (!etcd_reachable_ && etcd_failures_ > 0) {
    spdlog::info("cluster {}: etcd at {} answers again", url_.name, JoinEndpoints(url_));
  }
  etcd_reachable_ = true;
  revision_ = range->revision;
  std::vector<Member> members;
  for (const auto& kv : range->kvs) {
    auto m = DecodeMember(kv.value);
    if (!m.ok()) {
      spdlog::warn("cluster {}: ignoring etcd key {}: {}", url_.name, kv.key,
                   m.status().ToString());
      continue;
    }
    members.push_back(std::move(m).value());
  }
  auto next = std::make_shared<Placement>(std::move(members));
  if (next->members() == placement_->members()) return Status::Ok();
  if (revision_seen_ == 0) {
    // The first read: one line, not one per member.
    revision_seen_ = range->revision;
    spdlog::debug("cluster {}: {} members in etcd at {}", url_.name, next->members().size(),
                  JoinEndpoints(url_));
    placement_ = std::move(next);
    ++membership_changes_;
    changed_.notify_all();
    return Status::Ok();
  }
  for (const auto& m : next->members()) {
    if (placement_->FindById(m.id) == nullptr) {
      ++joins_;
      spdlog::info("cluster {}: node {} at {} joined", url_.name, m.id, m.address);
    }
  }
  for (const auto& m : placement_->members()) {
    if (next->FindById(m.id) == nullptr) {
      ++leaves_;
      spdlog::info("cluster {}: node {} at {} left; its keys now live elsewhere", url_.name, m.id,
                   m.address);
      // A node back at the same address later gets fresh connections.
      auto it = nodes_.find(m.address);
      if (it != nodes_.end()) {
        std::lock_guard node_lock(it->second->mu);
        it->second->client.reset();
      }
    }
  }
  placement_ = std::move(next);
  ++membership_changes_;
  changed_.notify_all();
  return Status::Ok();
}

void ClusterClient::PollLoop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    changed_.wait_for(lock, options_.poll_interval);
    if (stopping_) break;
    lock.unlock();
    (void)Refresh();  // failures are logged once per state change and counted
    lock.lock();
  }
}

std::shared_ptr<const Placement> ClusterClient::membership() const {
  std::lock_guard lock(mu_);
  return placement_;
}

Status ClusterClient::WaitForMembers(size_t n, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  if (changed_.wait_for(lock, timeout, [&] { return placement_->members().size() >= n; })) {
    return Status::Ok();
  }
  return Status::Timeout("cluster " + url_.name + " has " +
                         std::to_string(placement_->members().size()) + " members, not " +
                         std::to_string(n) + ", after " + std::to_string(timeout.count()) + " ms");
}

Result<Member> ClusterClient::Home(const Key& key) const {
  auto p = membership();
  if (p->empty()) {
    return Status::Unavailable("cluster " + url_.name + " has no live members in etcd at " +
                               JoinEndpoints(url_) + "; start kvstored with --cluster " +
                               options_.url);
  }
  return p->Home(key);
}

Result<std::string> ClusterClient::Target(const Key& key, const std::string& node,
                                          const Placement& placement) const {
  if (!node.empty()) return node;
  if (options_.placement == PlacementKind::kLocal) return options_.local_node;
  if (placement.empty()) {
    return Status::Unavailable("cluster " + url_.name + " has no live members in etcd at " +
                               JoinEndpoints(url_) + "; start kvstored with --cluster " +
                               options_.url);
  }
  return placement.Home(key).address;
}

Result<std::vector<std::pair<std::string, std::vector<size_t>>>> ClusterClient::Group(
    std::span<const Key> keys, const std::string& node, const Placement& placement) const {
  std::vector<std::pair<std::string, std::vector<size_t>>> groups;
  if (keys.empty()) return groups;
  if (!node.empty() || options_.placement == PlacementKind::kLocal || placement.empty()) {
    // One node for every key (or the error of an empty cluster).
    KVSTORE_ASSIGN_OR_RETURN(std::string target, Target(keys[0], node, placement));
    std::vector<size_t> all(keys.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    groups.emplace_back(std::move(target), std::move(all));
    return groups;
  }
  std::vector<std::vector<size_t>> by_member(placement.members().size());
  for (size_t i = 0; i < keys.size(); ++i) by_member[placement.HomeIndex(keys[i])].push_back(i);
  for (size_t m = 0; m < by_member.size(); ++m) {
    if (!by_member[m].empty()) {
      groups.emplace_back(placement.members()[m].address, std::move(by_member[m]));
    }
  }
  // In order of each group's first key, so the first key's node goes first.
  std::sort(groups.begin(), groups.end(),
            [](const auto& a, const auto& b) { return a.second[0] < b.second[0]; });
  return groups;
}

Result<std::shared_ptr<Client>> ClusterClient::Node(const std::string& address) {
  std::shared_ptr<NodeState> ns;
  {
    std::lock_guard lock(mu_);
    auto& slot = nodes_[address];
    if (slot == nullptr) slot = std::make_shared<NodeState>();
    ns = slot;
  }
  std::lock_guard lock(ns->mu);
  if (ns->client) return ns->client;
  auto now = Clock::now();
  if (now < ns->down_until) {
    ns->connect_failures.fetch_add(1, std::memory_order_relaxed);
    return Status::Unavailable("kvstored at " + address + " (cluster " + url_.name +
                               ") refused a connection moments ago; treating its keys as missing");
  }
  ClientOptions co = options_.node;
  co.address = address;
  auto c = Client::Connect(co);
  if (!c.ok()) {
    ns->connect_failures.fetch_add(1, std::memory_order_relaxed);
    ns->down_until = now + options_.node_retry_interval;
    return c.status().WithContext("cluster " + url_.name + " node " + address);
  }
  ns->client = std::shared_ptr<Client>(std::move(c).value());
  return ns->client;
}

void ClusterClient::CountCall(const std::string& address, NodeOp op, uint64_t bytes,
                              const Status& result) {
  std::shared_ptr<NodeState> ns;
  {
    std::lock_guard lock(mu_);
    auto it = nodes_.find(address);
    if (it == nodes_.end()) return;
    ns = it->second;
  }
  auto& counters = ns->ops[static_cast<size_t>(op)];
  counters.requests.fetch_add(1, std::memory_order_relaxed);
  counters.bytes.fetch_add(bytes, std::memory_order_relaxed);
  if (!Unreachable(result)) return;
  counters.failures.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(ns->mu);
  // The node went away mid-session: skip it for a while, then dial afresh.
  ns->client.reset();
  ns->down_until = Clock::now() + options_.node_retry_interval;
}

ClusterClientStats ClusterClient::Stats() const {
  ClusterClientStats s;
  std::lock_guard lock(mu_);
  s.members = placement_->members().size();
  s.revision = revision_;
  s.etcd_reachable = etcd_reachable_;
  s.membership_changes = membership_changes_;
  s.joins = joins_;
  s.leaves = leaves_;
  s.etcd_failures = etcd_failures_;
  for (const auto& [address, ns] : nodes_) {
    ClusterClientStats::Node n{address, 0, ns->connect_failures.load(), {}};
    for (size_t op = 0; op < kNodeOps; ++op) {
      const auto& c = ns->ops[op];
      ClusterClientStats::Op o{static_cast<NodeOp>(op), c.requests.load(), c.bytes.load(),
                               c.failures.load()};
      if (o.requests == 0) continue;
      n.requests += o.requests;
      n.failures += o.failures;
      n.ops.push_back(o);
    }
    s.nodes.push_back(std::move(n));
  }
  return s;
}

Result<bool> ClusterClient::Insert(const Key& key, std::span<const std::byte> value,
                                   const InsertOptions& options) {
  auto p = membership();
  KVSTORE_ASSIGN_OR_RETURN(std::string target, Target(key, {}, *p));
  KVSTORE_ASSIGN_OR_RETURN(auto client, Node(target));
  auto r = client->Insert(key, value, options);
  CountCall(target, NodeOp::kInsert, r.ok() ? value.size() : 0, r.status());
  return r;
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
    std::vector<std::pair<std::string, std::vector<size_t>>> moved;
    std::vector<std::pair<std::string, std::vector<size_t>>> groups;
    for (size_t i : pending) {
      KVSTORE_ASSIGN_OR_RETURN(std::string target, Target(keys[i], node, *p));
      const std::string& before = waited_on[i];
      if (prev != nullptr && !before.empty() && prev->FindByAddress(before) != nullptr &&
          p->FindByAddress(before) == nullptr) {
        return Status::Unavailable("drop_select: node " + before + " left cluster " + url_.name +
                                   " while this call waited on it; what it held is lost "
                                   "(recompute)");
      }
      if (!before.empty() && before != target) {
        auto it = std::find_if(moved.begin(), moved.end(),
                               [&](const auto& g) { return g.first == before; });
        if (it == moved.end()) {
          moved.emplace_back(before, std::vector<size_t>{i});
        } else {
          it->second.push_back(i);
        }
      }
      auto it = std::find_if(groups.begin(), groups.end(),
                             [&](const auto& g) { return g.first == target; });
      if (it == groups.end()) {
        groups.emplace_back(target, std::vector<size_t>{i});
      } else {
        it->second.push_back(i);
      }
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

Result<std::unique_ptr<ClusterClient>> ConnectClusterAddress(const ClientOptions& options) {
  ClusterClientOptions o;
  std::string_view address = options.address;
  auto q = address.find('?');
  o.url = std::string(address.substr(0, q));
  if (q != std::string_view::npos) {
    std::string_view query = address.substr(q + 1);
    while (!query.empty()) {
      auto amp = query.find('&');
      std::string_view item = query.substr(0, amp);
      auto eq = item.find('=');
      std::string_view name = item.substr(0, eq);
      std::string_view value = eq == std::string_view::npos ? "" : item.substr(eq + 1);
      if (name == "placement") {
        KVSTORE_ASSIGN_OR_RETURN(o.placement, ParsePlacementKind(value));
      } else if (name == "node") {
        o.local_node = std::string(value);
      } else {
        return Status::InvalidArgument("cluster address '" + options.address + "': unknown '" +
                                       std::string(name) + "' (known: placement, node)");
      }
      if (amp == std::string_view::npos) break;
      query.remove_prefix(amp + 1);
    }
  }
  o.node = options;
  o.etcd_timeout = std::min(o.etcd_timeout, options.connect_timeout);
  KVSTORE_ASSIGN_OR_RETURN(auto c, ClusterClient::Connect(o));
  if (!c->WaitForMembers(1, options.connect_timeout).ok()) {
    return Status::Unavailable("cluster " + o.url +
                               " has no members yet (start kvstored with --cluster " + o.url + ")");
  }
  return c;
}

}  // namespace kvstore::cluster
