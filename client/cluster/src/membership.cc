#include "kvstore/cluster/membership.h"

#include <nlohmann/json.hpp>
#include <stdexcept>

namespace kvstore::cluster {

namespace {
constexpr std::string_view kScheme = "etcd://";
constexpr const char* kForm = " (expected etcd://HOST:PORT[,HOST:PORT...]/NAME)";
}  // namespace

bool IsClusterUrl(std::string_view address) { return address.starts_with(kScheme); }

Result<ClusterUrl> ParseClusterUrl(std::string_view url) {
  if (!IsClusterUrl(url)) {
    return Status::InvalidArgument("'" + std::string(url) + "' is not a cluster address" + kForm);
  }
  std::string_view rest = url.substr(kScheme.size());
  auto slash = rest.find('/');
  if (slash == std::string_view::npos || slash + 1 == rest.size()) {
    return Status::InvalidArgument("'" + std::string(url) + "' names no cluster" + kForm);
  }
  ClusterUrl out;
  out.name = std::string(rest.substr(slash + 1));
  for (char c : out.name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return Status::InvalidArgument("cluster name '" + out.name +
                                     "' may hold only letters, digits, '.', '_' and '-'");
    }
  }
  std::string_view hosts = rest.substr(0, slash);
  while (!hosts.empty()) {
    auto comma = hosts.find(',');
    std::string_view one = hosts.substr(0, comma);
    auto colon = one.rfind(':');
    if (one.empty() || colon == std::string_view::npos || colon == 0 || colon + 1 == one.size()) {
      return Status::InvalidArgument("etcd endpoint '" + std::string(one) + "' in '" +
                                     std::string(url) + "' is not HOST:PORT" + kForm);
    }
    out.endpoints.emplace_back(one);
    if (comma == std::string_view::npos) break;
    hosts.remove_prefix(comma + 1);
  }
  if (out.endpoints.empty()) {
    return Status::InvalidArgument("'" + std::string(url) + "' names no etcd endpoint" + kForm);
  }
  return out;
}

std::string MembersPrefix(const ClusterUrl& url) { return "/kvstore/" + url.name + "/members/"; }

std::string EncodeMember(const Member& m) {
  nlohmann::json j = {{"id", m.id},
                      {"address", m.address},
                      {"transports", m.transports},
                      {"capacity_bytes", m.capacity_bytes},
                      {"spill_bytes", m.spill_bytes},
                      {"metrics", m.metrics},
                      {"version", m.version},
                      {"started_unix_ms", m.started_unix_ms}};
  return j.dump();
}

namespace {

// An unsigned integer field, absent = 0. A float, a negative number or a
// string there is refused by name (a float converted to an integer out of its
// range is undefined behaviour, so it is never converted).
uint64_t UnsignedField(const nlohmann::json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return 0;
  if (!it->is_number_unsigned()) {
    throw std::invalid_argument(std::string("\"") + field +
                                "\" must be a non-negative integer, not " + it->dump());
  }
  return it->get<uint64_t>();
}

}  // namespace

Result<Member> DecodeMember(std::string_view text) {
  try {
    auto j = nlohmann::json::parse(text);
    if (!j.is_object()) throw std::invalid_argument("not a JSON object");
    Member m;
    m.id = j.at("id").get<std::string>();
    m.address = j.at("address").get<std::string>();
    m.capacity_bytes = UnsignedField(j, "capacity_bytes");
    m.spill_bytes = UnsignedField(j, "spill_bytes");
    m.transports = j.value("transports", std::vector<std::string>{});
    m.metrics = j.value("metrics", "");
    m.version = j.value("version", "");
    m.started_unix_ms = UnsignedField(j, "started_unix_ms");
    if (m.id.empty() || m.address.empty()) {
      return Status::InvalidArgument("member record without id or address: " + std::string(text));
    }
    return m;
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("member record is not valid: ") + e.what() + ": " +
                                   std::string(text));
  }
}

}  // namespace kvstore::cluster
