// ClusterClient's calls over every member: ping, stats and list.
#include "kvstore/cluster/cluster_client.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <map>

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

namespace {

// A cluster list cursor: the magic, then per node that has started
// [u16 address length][address][u8 done][u32 cursor length][node's cursor].
constexpr std::string_view kListMagic = "kvcl1";

struct NodeListState {
  bool done = false;
  std::vector<std::byte> cursor;  // the node's own; empty with !done = from its start
};

void PutBytes(std::vector<std::byte>* out, const void* p, size_t n) {
  const auto* b = static_cast<const std::byte*>(p);
  out->insert(out->end(), b, b + n);
}

template <typename T>
void PutInt(std::vector<std::byte>* out, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) out->push_back(std::byte((v >> (8 * i)) & 0xff));
}

std::vector<std::byte> EncodeListCursor(const std::map<std::string, NodeListState>& state) {
  std::vector<std::byte> out;
  PutBytes(&out, kListMagic.data(), kListMagic.size());
  for (const auto& [address, s] : state) {
    PutInt<uint16_t>(&out, static_cast<uint16_t>(address.size()));
    PutBytes(&out, address.data(), address.size());
    PutInt<uint8_t>(&out, s.done ? 1 : 0);
    PutInt<uint32_t>(&out, static_cast<uint32_t>(s.cursor.size()));
    PutBytes(&out, s.cursor.data(), s.cursor.size());
  }
  return out;
}

Result<std::map<std::string, NodeListState>> DecodeListCursor(std::span<const std::byte> in) {
  std::map<std::string, NodeListState> state;
  if (in.empty()) return state;
  const auto bad = Status::InvalidArgument(
      "list cursor is not from a cluster list (pass back next_cursor of the previous page of "
      "the same cluster address)");
  size_t at = 0;
  auto take = [&](size_t n) -> std::span<const std::byte> {
    if (in.size() - at < n) return {};
    auto s = in.subspan(at, n);
    at += n;
    return s;
  };
  auto get_int = [&](size_t n, uint64_t* v) {
    auto b = take(n);
    if (b.size() != n) return false;
    *v = 0;
    for (size_t i = 0; i < n; ++i) *v |= uint64_t(std::to_integer<uint8_t>(b[i])) << (8 * i);
    return true;
  };
  auto magic = take(kListMagic.size());
  if (magic.size() != kListMagic.size() ||
      std::memcmp(magic.data(), kListMagic.data(), kListMagic.size()) != 0)
    return bad;
  while (at < in.size()) {
    uint64_t len = 0, done = 0, cur = 0;
    if (!get_int(2, &len)) return bad;
    auto address = take(len);
    if (address.size() != len || !get_int(1, &done) || !get_int(4, &cur)) return bad;
    auto cursor = take(cur);
    if (cursor.size() != cur) return bad;
    NodeListState& s =
        state[std::string(reinterpret_cast<const char*>(address.data()), address.size())];
    s.done = done != 0;
    s.cursor.assign(cursor.begin(), cursor.end());
  }
  return state;
}

}  // namespace

Result<ClusterListPage> ClusterClient::List(const ListOptions& options) {
  KVSTORE_ASSIGN_OR_RETURN(auto before, DecodeListCursor(options.cursor));
  // Only current members carry over: a joiner starts fresh, a leaver is dropped.
  std::map<std::string, NodeListState> state;
  for (const auto& m : membership()->members()) state[m.address] = std::move(before[m.address]);
  ClusterListPage page;
  size_t room = options.limit == 0 ? ListOptions{}.limit : options.limit;
  while (room > 0) {
    std::vector<std::string> pending;
    for (const auto& [address, s] : state) {
      if (!s.done) pending.push_back(address);
    }
    if (pending.empty()) break;
    // Share the room: the first room % k nodes one more; nodes with none wait.
    pending.resize(std::min(pending.size(), room));
    const size_t k = pending.size();
    std::vector<Result<ListPage>> got(k, Status::Ok());
    ParallelFor(k, [&](size_t i) {
      ListOptions lo;
      lo.cursor = state[pending[i]].cursor;
      lo.limit = static_cast<uint32_t>(room / k + (i < room % k ? 1 : 0));
      lo.tier = options.tier;
      auto client = Node(pending[i]);
      got[i] = client.ok() ? (*client)->List(lo) : Result<ListPage>(client.status());
      if (client.ok()) CountCall(pending[i], NodeOp::kList, 0, got[i].status());
    });
    size_t added = 0;
    for (size_t i = 0; i < k; ++i) {
      NodeListState& s = state[pending[i]];
      if (!got[i].ok()) {
        if (!Unreachable(got[i].status())) {
          return got[i].status().WithContext("list on node " + pending[i]);
        }
        spdlog::warn("cluster {}: list skips node {}: {}", url_.name, pending[i],
                     got[i].status().ToString());
        page.skipped.push_back(pending[i]);
        s.done = true;
        continue;
      }
      for (auto& e : got[i]->entries) {
        page.entries.push_back(std::move(e));
        page.nodes.push_back(pending[i]);
        ++added;
      }
      s.cursor = std::move(got[i]->next_cursor);
      s.done = s.cursor.empty();
    }
    room -= std::min(room, added);
    if (added == 0) break;  // nothing moved: hand the cursor back rather than spin
  }
  if (std::any_of(state.begin(), state.end(), [](const auto& s) { return !s.second.done; })) {
    page.next_cursor = EncodeListCursor(state);
  }
  return page;
}

}  // namespace kvstore::cluster
