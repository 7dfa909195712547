// ls, show, stats, ping, key: inspection commands (key needs no daemon).
#include <cstdio>
#include <iostream>

#include "commands.h"
#include "kvstore/units.h"
#include "output.h"

namespace kvstore::cli {
namespace {

constexpr uint32_t kListPageSize = 1000;

std::string Percent(double ratio) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f%%", ratio * 100.0);
  return buf;
}

}  // namespace

bool ParseListTier(const std::string& tier, int* out) {
  if (tier.empty()) {
    *out = -1;
  } else if (tier == "device") {
    *out = static_cast<int>(Tier::kDevice);
  } else if (tier == "host") {
    *out = static_cast<int>(Tier::kHost);
  } else if (tier == "spill") {
    *out = static_cast<int>(Tier::kSpill);
  } else {
    UsageError("ls: --tier must be host, spill or device, not \"" + tier + "\"");
    return false;
  }
  return true;
}

int RunList(const GlobalOptions& g, const ListCmdOptions& o) {
  ListOptions lo;
  if (!ParseListTier(o.tier, &lo.tier)) return kExitUsage;
  int code = kExitOk;
  auto client = ConnectOrExplain(g, &code);
  if (!client) return code;

  // --limit 0 means everything.
  uint64_t want = o.limit == 0 ? UINT64_MAX : o.limit;
  std::vector<EntryInfo> entries;
  bool more = false;
  while (entries.size() < want) {
    lo.limit = static_cast<uint32_t>(std::min<uint64_t>(kListPageSize, want - entries.size()));
    auto page = client->List(lo);
    if (!page.ok()) return CallFailed(g, "ls", page.status());
    for (EntryInfo& e : page->entries) {
      if (entries.size() < want) entries.push_back(std::move(e));
    }
    more = !page->next_cursor.empty();
    if (!more || page->entries.empty()) break;
    lo.cursor = std::move(page->next_cursor);
  }

  if (g.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const EntryInfo& e : entries) arr.push_back(EntryInfoJson(e));
    PrintJson({{"entries", arr}, {"more", more}});
    return kExitOk;
  }
  uint64_t now = NowUnixMs();
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"KEY", "SIZE", "TIER", "LAYOUT", "AGE", "EXPIRES-IN"});
  for (const EntryInfo& e : entries) {
    rows.push_back({e.key.ToHex(), FormatSize(e.meta.size), std::string(TierName(e.meta.tier)),
                    e.meta.layout.empty() ? "-" : e.meta.layout,
                    FormatAge(e.meta.created_unix_ms, now),
                    FormatExpiresIn(e.meta.expires_unix_ms, now)});
  }
  PrintTable(rows);
  if (more) {
    std::cerr << "(first " << entries.size() << " entries shown; raise --limit, 0 = all)"
              << std::endl;
  }
  return kExitOk;
}

int RunShow(const GlobalOptions& g, const std::string& hex) {
  std::vector<Key> keys;
  if (!ParseKeys({hex}, &keys)) return kExitUsage;
  int code = kExitOk;
  auto client = ConnectOrExplain(g, &code);
  if (!client) return code;
  auto info = client->Show(keys[0]);
  std::string info_key_hex = keys[0].ToHex();
  if (!info.ok()) return CallFailed(g, "show " + info_key_hex, info.status());
  nlohmann::json j = EntryInfoJson(*info);
  if (g.json) {
    PrintJson(j);
    return kExitOk;
  }
  uint64_t now = NowUnixMs();
  const EntryMeta& m = info->meta;
  PrintTable({
      {"key", info->key.ToHex()},
      {"size", FormatSize(m.size) + " (" + std::to_string(m.size) + " bytes)"},
      {"tier", std::string(TierName(m.tier))},
      {"layout", m.layout.empty() ? "-" : m.layout},
      {"producer", m.producer.empty() ? "-" : m.producer},
      {"checksum", "xxh3-64:" + j["checksum"].get<std::string>()},
      {"age", FormatAge(m.created_unix_ms, now)},
      {"expires in", FormatExpiresIn(m.expires_unix_ms, now)},
  });
  return kExitOk;
}

int RunStats(const GlobalOptions& g) {
  int code = kExitOk;
  auto client = ConnectOrExplain(g, &code);
  if (!client) return code;
  auto s = client->Stats();
  if (!s.ok()) return CallFailed(g, "stats", s.status());
  if (g.json) {
    PrintJson(StatsJson(*s));
    return kExitOk;
  }
  std::cout << "kvstored " << (s->version.empty() ? "?" : s->version) << " at " << g.addr << ", up "
            << FormatDuration(std::chrono::seconds(s->uptime_seconds)) << "\n\n";
  std::vector<std::vector<std::string>> tiers;
  tiers.push_back({"TIER", "ENTRIES", "BYTES", "USED", "CAPACITY", "FULL"});
  for (const TierStats& t : s->tiers) {
    std::string full =
        t.capacity_bytes == 0 ? "-" : Percent(static_cast<double>(t.used_bytes) / t.capacity_bytes);
    tiers.push_back({std::string(TierName(t.tier)), std::to_string(t.entries), FormatSize(t.bytes),
                     FormatSize(t.used_bytes),
                     t.capacity_bytes == 0 ? "unbounded" : FormatSize(t.capacity_bytes), full});
  }
  PrintTable(tiers);
  std::cout << "\n";
  PrintTable({
      {"waiters", std::to_string(s->waiters)},
      {"connections", std::to_string(s->connections)},
      {"inserts", std::to_string(s->inserts)},
      {"hits", std::to_string(s->hits)},
      {"misses", std::to_string(s->misses)},
      {"ttl expiries", std::to_string(s->ttl_expired)},
      {"evictions", std::to_string(s->evictions)},
      {"promotions", std::to_string(s->promotions)},
      {"refused inserts", std::to_string(s->refused_inserts)},
      {"checksum failures", std::to_string(s->checksum_failures)},
      {"staged transfers", std::to_string(s->staged_transfers)},
      {"fragmentation", Percent(s->fragmentation)},
  });
  return kExitOk;
}

int RunPing(const GlobalOptions& g) {
  int code = kExitOk;
  auto start = std::chrono::steady_clock::now();
  auto client = ConnectOrExplain(g, &code);
  if (!client) return code;
  Status s = client->Ping();
  if (!s.ok()) return CallFailed(g, "ping", s);
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                  start)
                .count();
  if (g.json) {
    PrintJson({{"addr", g.addr}, {"ok", true}, {"connect_and_ping_us", us}});
  } else {
    std::cout << "kvstored at " << g.addr << " is up (connect + ping " << us << " us)" << std::endl;
  }
  return kExitOk;
}

int RunKey(const GlobalOptions& g, const KeyCmdOptions& o) {
  KeyOptions ko;
  ko.ns = o.ns;
  if (o.block_size == 0) return UsageError("key: --block-size must be at least 1");
  ko.block_size = o.block_size;
  if (o.hash == "sha256") {
    ko.hash = HashKind::kSha256;
  } else if (o.hash == "xxh3") {
    ko.hash = HashKind::kXxh3;
  } else {
    return UsageError("key: --hash must be sha256 or xxh3, not \"" + o.hash + "\"");
  }
  auto tokens = ParseTokenList(o.tokens);
  if (!tokens.ok()) return UsageError("key: --tokens: " + tokens.status().message());
  std::vector<Key> keys = PrefixKeys(*tokens, ko);
  if (g.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const Key& k : keys) arr.push_back(k.ToHex());
    PrintJson({{"namespace", o.ns},
               {"block_size", o.block_size},
               {"hash", o.hash},
               {"tokens", tokens->size()},
               {"keys", arr}});
    return kExitOk;
  }
  std::string out;
  for (const Key& k : keys) out += k.ToHex() + "\n";
  std::cout << out << std::flush;
  if (keys.empty()) {
    std::cerr << "kvstore-cli: key: " << tokens->size() << " tokens make no full block of "
              << o.block_size << " (only full blocks get keys)" << std::endl;
  }
  return kExitOk;
}

}  // namespace kvstore::cli
