#include "cluster_commands.h"

#include <iostream>

#include "kvstore/cluster/cluster_client.h"
#include "kvstore/units.h"
#include "output.h"

namespace kvstore::cli {
namespace {

using cluster::ClusterClient;
using cluster::Member;

std::unique_ptr<ClusterClient> ConnectCluster(const GlobalOptions& g, const std::string& url,
                                              int* exit_code) {
  cluster::ClusterClientOptions o;
  o.url = url;
  o.node.token = g.token;
  o.node.client_name = "kvstore-cli";
  o.node.connect_timeout = g.connect_timeout;
  o.node.max_connections = 2;
  o.etcd_timeout = g.connect_timeout;
  auto c = ClusterClient::Connect(o);
  if (c.ok()) return std::move(c).value();
  PrintError("cannot read the cluster's membership: " + c.status().ToString() +
             (c.status().code() == StatusCode::kInvalidArgument
                  ? ""
                  : " (is etcd running at the address in --cluster?)"));
  *exit_code = c.status().code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailed;
  return nullptr;
}

uint64_t Used(const StoreStats& s) {
  uint64_t n = 0;
  for (const auto& t : s.tiers) n += t.used_bytes;
  return n;
}
uint64_t Entries(const StoreStats& s) {
  uint64_t n = 0;
  for (const auto& t : s.tiers) n += t.entries;
  return n;
}

struct NodeView {
  Member member;
  Result<StoreStats> stats = Status::Internal("not asked");
};

std::vector<NodeView> AskEveryNode(ClusterClient& c) {
  std::vector<NodeView> out;
  for (const auto& m : c.membership()->members()) {
    NodeView v{m};
    auto client = c.Node(m.address);
    v.stats = client.ok() ? (*client)->Stats() : Result<StoreStats>(client.status());
    out.push_back(std::move(v));
  }
  return out;
}

int Members(const GlobalOptions& g, ClusterClient& c) {
  auto nodes = AskEveryNode(c);
  if (g.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& n : nodes) {
      nlohmann::json j = {{"id", n.member.id},
                          {"address", n.member.address},
                          {"state", n.stats.ok() ? "up" : "unreachable"},
                          {"capacity_bytes", n.member.capacity_bytes},
                          {"spill_bytes", n.member.spill_bytes},
                          {"transports", n.member.transports},
                          {"version", n.member.version}};
      if (n.stats.ok()) {
        j["used_bytes"] = Used(*n.stats);
        j["entries"] = Entries(*n.stats);
      } else {
        j["error"] = n.stats.status().ToString();
      }
      arr.push_back(j);
    }
    PrintJson({{"members", arr}, {"etcd_revision", c.Stats().revision}});
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"ID", "ADDRESS", "STATE", "CAPACITY", "USED", "ENTRIES", "TRANSPORTS"}};
  for (const auto& n : nodes) {
    std::string transports;
    for (const auto& t : n.member.transports) transports += (transports.empty() ? "" : ",") + t;
    rows.push_back({n.member.id, n.member.address, n.stats.ok() ? "up" : "unreachable",
                    FormatSize(n.member.capacity_bytes),
                    n.stats.ok() ? FormatSize(Used(*n.stats)) : "-",
                    n.stats.ok() ? std::to_string(Entries(*n.stats)) : "-", transports});
  }
  PrintTable(rows);
  if (nodes.empty()) std::cerr << "(no members: start kvstored with --cluster)" << std::endl;
  return kExitOk;
}

int Stats(const GlobalOptions& g, ClusterClient& c) {
  auto nodes = AskEveryNode(c);
  StoreStats total;
  if (g.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& n : nodes) {
      nlohmann::json j = n.stats.ok() ? StatsJson(*n.stats) : nlohmann::json::object();
      j["address"] = n.member.address;
      j["id"] = n.member.id;
      if (!n.stats.ok()) j["error"] = n.stats.status().ToString();
      arr.push_back(j);
    }
    PrintJson({{"nodes", arr}});
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"NODE", "ENTRIES", "USED", "INSERTS", "HITS", "MISSES", "EVICTIONS", "WAITERS", "CLIENTS"}};
  uint64_t entries = 0, used = 0;
  for (const auto& n : nodes) {
    if (!n.stats.ok()) {
      rows.push_back({n.member.address, "unreachable", "-", "-", "-", "-", "-", "-", "-"});
      continue;
    }
    const StoreStats& s = *n.stats;
    entries += Entries(s);
    used += Used(s);
    total.inserts += s.inserts;
    total.hits += s.hits;
    total.misses += s.misses;
    total.evictions += s.evictions;
    total.waiters += s.waiters;
    total.connections += s.connections;
    rows.push_back({n.member.address, std::to_string(Entries(s)), FormatSize(Used(s)),
                    std::to_string(s.inserts), std::to_string(s.hits), std::to_string(s.misses),
                    std::to_string(s.evictions), std::to_string(s.waiters),
                    std::to_string(s.connections)});
  }
  rows.push_back({"total", std::to_string(entries), FormatSize(used), std::to_string(total.inserts),
                  std::to_string(total.hits), std::to_string(total.misses),
                  std::to_string(total.evictions), std::to_string(total.waiters),
                  std::to_string(total.connections)});
  PrintTable(rows);
  return kExitOk;
}

int List(const GlobalOptions& g, const ListCmdOptions& o, ClusterClient& c) {
  ListOptions lo;
  if (!ParseListTier(o.tier, &lo.tier)) return kExitUsage;
  const uint64_t want = o.limit == 0 ? UINT64_MAX : o.limit;
  std::vector<std::pair<std::string, EntryInfo>> entries;
  bool more = false;
  while (entries.size() < want) {
    lo.limit = static_cast<uint32_t>(std::min<uint64_t>(1000, want - entries.size()));
    auto page = c.List(lo);
    if (!page.ok()) return CallFailed(g, "ls", page.status());
    for (const auto& node : page->skipped) PrintError("ls: skipping unreachable node " + node);
    for (size_t i = 0; i < page->entries.size(); ++i) {
      entries.emplace_back(page->nodes[i], std::move(page->entries[i]));
    }
    more = !page->next_cursor.empty();
    if (!more || page->entries.empty()) break;
    lo.cursor = std::move(page->next_cursor);
  }
  if (g.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& [node, e] : entries) {
      auto j = EntryInfoJson(e);
      j["node"] = node;
      arr.push_back(j);
    }
    PrintJson({{"entries", arr}, {"more", more}});
    return kExitOk;
  }
  uint64_t now = NowUnixMs();
  std::vector<std::vector<std::string>> rows = {{"NODE", "KEY", "SIZE", "TIER", "AGE"}};
  for (const auto& [node, e] : entries) {
    rows.push_back({node, e.key.ToHex(), FormatSize(e.meta.size),
                    std::string(TierName(e.meta.tier)), FormatAge(e.meta.created_unix_ms, now)});
  }
  PrintTable(rows);
  if (more)
    std::cerr << "(first " << entries.size() << " entries shown; raise --limit)" << std::endl;
  return kExitOk;
}

int Locate(const GlobalOptions& g, const std::string& hex, ClusterClient& c) {
  std::vector<Key> keys;
  if (!ParseKeys({hex}, &keys)) return kExitUsage;
  auto home = c.Home(keys[0]);
  if (!home.ok()) return CallFailed(g, "locate", home.status());
  std::vector<std::string> holders;
  for (const auto& m : c.membership()->members()) {
    if (c.Show(keys[0], m.address).ok()) holders.push_back(m.address);
  }
  if (g.json) {
    PrintJson({{"key", hex},
               {"home", {{"id", home->id}, {"address", home->address}}},
               {"held_by", holders}});
  } else {
    std::vector<std::vector<std::string>> rows = {{"KEY", "HOME", "HOME-ID", "HELD-BY"}};
    std::string held;
    for (const auto& h : holders) held += (held.empty() ? "" : ",") + h;
    rows.push_back({hex, home->address, home->id, held.empty() ? "(nowhere)" : held});
    PrintTable(rows);
  }
  return holders.empty() ? kExitNotFound : kExitOk;
}

}  // namespace

ClusterCommands::ClusterCommands(CLI::App& app, const GlobalOptions& g, const ListCmdOptions& ls,
                                 std::function<int()>& run)
    : g_(g), ls_(ls) {
  app.add_option("--cluster", url_,
                 "a cluster instead of one node: etcd://HOST:PORT[,HOST:PORT...]/NAME "
                 "(members, stats, ls, locate)");
  auto needs_cluster = [&run](const char* name) {
    return [&run, name] {
      run = [name] {
        return UsageError(std::string(name) + " needs --cluster etcd://HOST:PORT/NAME");
      };
    };
  };
  app.add_subcommand("members", "(--cluster) list the cluster's nodes: state, capacity, use")
      ->callback(needs_cluster("members"));
  auto* locate =
      app.add_subcommand("locate", "(--cluster) which node is KEY's home, and which hold it now");
  locate->add_option("KEY", locate_key_, "64 hex characters")->required();
  locate->callback(needs_cluster("locate"));
}

int ClusterCommands::Run(const CLI::App& app) {
  const auto chosen = app.get_subcommands();
  const std::string name = chosen.empty() ? "" : chosen.front()->get_name();
  if (name != "members" && name != "stats" && name != "ls" && name != "locate") {
    return UsageError(name +
                      " works on one node: pass --addr HOST:PORT of a node instead of "
                      "--cluster (kvstore-cli --cluster URL locate KEY finds it)");
  }
  int code = kExitOk;
  auto c = ConnectCluster(g_, url_, &code);
  if (!c) return code;
  if (name == "members") return Members(g_, *c);
  if (name == "stats") return Stats(g_, *c);
  if (name == "ls") return List(g_, ls_, *c);
  return Locate(g_, locate_key_, *c);
}

}  // namespace kvstore::cli
