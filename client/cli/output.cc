#include "output.h"

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <iostream>

#include "kvstore/units.h"

namespace kvstore::cli {

void PrintError(std::string_view message) {
  std::string line = "kvstore-cli: ";
  line += message;
  // One line, whatever the daemon put in its message.
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  std::cerr << line << std::endl;
}

int UsageError(std::string_view message) {
  PrintError(message);
  return kExitUsage;
}

int ExitCodeFor(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk:
      return kExitOk;
    case StatusCode::kNotFound:
      return kExitNotFound;
    case StatusCode::kTimeout:
      return kExitTimeout;
    default:
      return kExitFailed;
  }
}

namespace {

// The library's messages may already end with advice in parentheses, and may already say
// "cannot reach kvstored at ADDR: "; the CLI adds its own (flag-specific) advice and
// context, so both are cut to keep the line short and free of repeats.
std::string Bare(const Status& s, const std::string& addr) {
  std::string m = s.message().empty() ? std::string(StatusCodeName(s.code())) : s.message();
  for (const std::string& prefix :
       {"cannot reach kvstored at " + addr + ": ", "kvstored at " + addr + ": "}) {
    while (m.rfind(prefix, 0) == 0) m.erase(0, prefix.size());
  }
  if (!m.empty() && m.back() == ')') {
    int depth = 0;
    for (size_t i = m.size(); i-- > 0;) {
      if (m[i] == ')') ++depth;
      if (m[i] == '(' && --depth == 0) {
        if (i > 0 && m[i - 1] == ' ') m.erase(i - 1);
        break;
      }
    }
  }
  return m;
}

}  // namespace

int CallFailed(const GlobalOptions& g, std::string_view op, const Status& s) {
  std::string at = "kvstored at " + g.addr;
  std::string msg = Bare(s, g.addr);
  std::string line(op);
  switch (s.code()) {
    case StatusCode::kNotFound:
      line += ": not stored in " + at + " (list what is stored with `kvstore-cli ls`)";
      break;
    case StatusCode::kTimeout:
      line += ": timed out: " + msg +
              " (nothing was taken; raise --timeout or check that the producer is running)";
      break;
    case StatusCode::kUnavailable:
      line += ": lost " + at + ": " + msg + " (is the daemon still running? check --addr)";
      break;
    case StatusCode::kResourceExhausted:
      line += ": " + at + " is full or at a limit: " + msg +
              " (free space with `kvstore-cli rm`, wait for TTL expiry, or raise kvstored "
              "--memory)";
      break;
    case StatusCode::kPermissionDenied:
      line += ": " + at + " refused: " + msg + " (check --token-file or KVSTORE_TOKEN)";
      break;
    case StatusCode::kInvalidArgument:
      line += ": " + at + " rejected the request: " + msg +
              " (fix the arguments; retrying will not help)";
      break;
    case StatusCode::kDataLoss:
      line += ": the value failed its checksum: " + msg +
              " (the entry was discarded; have the producer insert it again)";
      break;
    default:
      line += ": " + at + " failed: " + msg + " (see the daemon's log)";
      break;
  }
  PrintError(line);
  return ExitCodeFor(s);
}

std::unique_ptr<Client> ConnectOrExplain(const GlobalOptions& g, int* exit_code) {
  ClientOptions opts;
  opts.address = g.addr;
  opts.token = g.token;
  opts.token_file = g.token_file;
  opts.client_name = "kvstore-cli";
  opts.connect_timeout = g.connect_timeout;
  opts.max_connections = 2;
  auto client = Client::Connect(opts);
  if (client.ok()) return std::move(client).value();
  const Status& s = client.status();
  if (s.code() == StatusCode::kPermissionDenied) {
    PrintError("kvstored at " + g.addr + " refused the connection: " + Bare(s, g.addr) +
               " (check --token-file or KVSTORE_TOKEN)");
  } else if (s.code() == StatusCode::kInvalidArgument) {
    PrintError("cannot connect to " + g.addr + ": " + Bare(s, g.addr) +
               " (--addr takes HOST:PORT, e.g. 127.0.0.1:7400)");
    *exit_code = kExitUsage;
    return nullptr;
  } else {
    PrintError("cannot reach kvstored at " + g.addr + ": " + Bare(s, g.addr) +
               " (is the daemon running? check --addr)");
  }
  *exit_code = kExitFailed;
  return nullptr;
}

bool ParseKeys(const std::vector<std::string>& hex, std::vector<Key>* keys) {
  for (const std::string& h : hex) {
    auto k = Key::FromHex(h);
    if (!k.ok()) {
      std::string shown = h.size() > 80 ? h.substr(0, 80) + "..." : h;
      PrintError("bad key \"" + shown + "\": " + k.status().message() +
                 " (keys come from `kvstore-cli key` or `kvstore-cli ls`)");
      return false;
    }
    keys->push_back(*k);
  }
  return true;
}

uint64_t NowUnixMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

namespace {

// Whole seconds are plenty for a table: "42s", "3m10s", "2h5m0s".
std::string CoarseDuration(uint64_t ms) {
  if (ms < 1000) return std::to_string(ms) + "ms";
  uint64_t s = ms / 1000;
  if (s >= 86400) return std::to_string(s / 86400) + "d" + std::to_string((s % 86400) / 3600) + "h";
  return FormatDuration(std::chrono::milliseconds(s * 1000));
}

std::string Hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64, v);
  return buf;
}

}  // namespace

std::string FormatAge(uint64_t created_unix_ms, uint64_t now_unix_ms) {
  if (created_unix_ms == 0) return "-";
  return CoarseDuration(now_unix_ms > created_unix_ms ? now_unix_ms - created_unix_ms : 0);
}

std::string FormatExpiresIn(uint64_t expires_unix_ms, uint64_t now_unix_ms) {
  if (expires_unix_ms == 0) return "never";
  if (expires_unix_ms <= now_unix_ms) return "expired";
  return CoarseDuration(expires_unix_ms - now_unix_ms);
}

nlohmann::json EntryInfoJson(const EntryInfo& e) {
  return {
      {"key", e.key.ToHex()},
      {"size", e.meta.size},
      {"checksum", Hex64(e.meta.checksum)},
      {"layout", e.meta.layout},
      {"producer", e.meta.producer},
      {"tier", std::string(TierName(e.meta.tier))},
      {"created_unix_ms", e.meta.created_unix_ms},
      {"expires_unix_ms", e.meta.expires_unix_ms},
  };
}

nlohmann::json StatsJson(const StoreStats& s) {
  nlohmann::json tiers = nlohmann::json::array();
  for (const TierStats& t : s.tiers) {
    tiers.push_back({{"tier", std::string(TierName(t.tier))},
                     {"entries", t.entries},
                     {"bytes", t.bytes},
                     {"used_bytes", t.used_bytes},
                     {"capacity_bytes", t.capacity_bytes}});
  }
  return {
      {"version", s.version},
      {"uptime_seconds", s.uptime_seconds},
      {"tiers", tiers},
      {"waiters", s.waiters},
      {"connections", s.connections},
      {"inserts", s.inserts},
      {"hits", s.hits},
      {"misses", s.misses},
      {"ttl_expired", s.ttl_expired},
      {"evictions", s.evictions},
      {"promotions", s.promotions},
      {"refused_inserts", s.refused_inserts},
      {"checksum_failures", s.checksum_failures},
      {"fragmentation", s.fragmentation},
      {"staged_transfers", s.staged_transfers},
  };
}

void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(width[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  std::cout << out << std::flush;
}

void PrintJson(const nlohmann::json& j) { std::cout << j.dump(2) << std::endl; }

}  // namespace kvstore::cli
