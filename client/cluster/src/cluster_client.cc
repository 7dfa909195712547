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
      "insert", "select", "drop_select", "match_prefix", "retain",     "remove",
      "show",   "list",   "stats",       "ping",         "insert_many"};
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

ClusterClient::ClusterClient(ClusterClientOptions options, ClusterUrl url)
    : options_(std::move(options)),
      url_(std::move(url)),
      etcd_(EtcdOptions{url_.endpoints, options_.etcd_timeout}),
      watch_(EtcdOptions{url_.endpoints, options_.etcd_timeout}),
      placement_(std::make_shared<Placement>()) {}

ClusterClient::~ClusterClient() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  watch_.Stop();
  if (follower_.joinable()) follower_.join();
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
  c->follower_ = std::thread([p = c.get()] { p->FollowLoop(); });
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

void ClusterClient::FollowLoop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    bool opened = false;
    if (options_.watch && etcd_reachable_) {
      const int64_t from = revision_ + 1;  // every change after the last read
      lock.unlock();
      Status ended = watch_.Run(MembersPrefix(url_), from, [&](const EtcdWatchResponse& r) {
        if (!opened) {
          opened = true;
          std::lock_guard l(mu_);
          watching_ = true;
        }
        if (r.events > 0) (void)Refresh();  // re-read them all: the range is the truth
      });
      lock.lock();
      watching_ = false;
      if (stopping_) break;
      if (ended.code() == StatusCode::kNotFound) {
        spdlog::info("cluster {}: {}; re-reading the members and watching again", url_.name,
                     ended.message());
      } else if (opened) {
        spdlog::info("cluster {}: etcd watch ended ({}); re-reading the members", url_.name,
                     ended.ToString());
      }
    }
    // No stream delivered anything: poll (the fallback) before trying again.
    if (!opened) changed_.wait_for(lock, options_.poll_interval);
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
  s.watching = watching_;
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
