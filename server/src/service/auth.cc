#include "auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "kvstore/units.h"

namespace kvstore::server {

namespace {

std::array<unsigned char, 32> Sha256(std::string_view s) {
  std::array<unsigned char, 32> out{};
  unsigned int len = 0;
  EVP_Digest(s.data(), s.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string_view RoleName(Role r) {
  switch (r) {
    case Role::kEngine:
      return "engine";
    case Role::kReader:
      return "reader";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

Result<Role> ParseRole(std::string_view name) {
  for (Role r : {Role::kEngine, Role::kReader, Role::kAdmin}) {
    if (name == RoleName(r)) return r;
  }
  return Status::InvalidArgument("unknown role '" + std::string(name) +
                                 "'; use engine, reader or admin");
}

Credentials::Credentials() {
  namespaces_.push_back("default");
  quotas_.emplace_back();
  store_ids_.push_back(kDefaultNamespace);
  anonymous_.name = "";
  anonymous_.ns = 0;
  anonymous_.role = Role::kAdmin;
}

NamespaceIndex Credentials::Intern(std::string_view ns) {
  for (size_t i = 0; i < namespaces_.size(); ++i) {
    if (namespaces_[i] == ns) return static_cast<NamespaceIndex>(i);
  }
  auto digest = Sha256(std::string("kvstore namespace ") + std::string(ns));
  NamespaceId id = 0;
  std::memcpy(&id, digest.data(), sizeof(id));
  if (id == kDefaultNamespace || id == kAllNamespaces) id = 1;
  namespaces_.emplace_back(ns);
  quotas_.emplace_back();
  store_ids_.push_back(id);
  return static_cast<NamespaceIndex>(namespaces_.size() - 1);
}

int64_t Credentials::IndexOf(NamespaceId store_id) const {
  for (size_t i = 0; i < store_ids_.size(); ++i) {
    if (store_ids_[i] == store_id) return static_cast<int64_t>(i);
  }
  return -1;
}

Credentials Credentials::SingleToken(std::string_view token) {
  Credentials c;
  Tenant t;
  t.name = "default";
  t.ns = 0;
  t.role = Role::kAdmin;
  t.token_sha256 = Sha256(token);
  c.tenants_.push_back(t);
  return c;
}

Result<Credentials> Credentials::Parse(std::string_view text, std::string_view origin) {
  Credentials c;
  std::istringstream in{std::string(text)};
  std::string line;
  int lineno = 0;
  auto bad = [&](const std::string& what) {
    return Status::InvalidArgument(std::string(origin) + ":" + std::to_string(lineno) + ": " +
                                   what);
  };
  while (std::getline(in, line)) {
    ++lineno;
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string x; words >> x;) w.push_back(x);
    if (w.empty()) continue;
    if (w[0] == "quota") {
      if (w.size() < 3) return bad("quota needs a namespace and at least one name=value");
      NamespaceLimits& q = c.quotas_[c.Intern(w[1])];
      for (size_t i = 2; i < w.size(); ++i) {
        auto eq = w[i].find('=');
        if (eq == std::string::npos) return bad("'" + w[i] + "' is not name=value");
        std::string key = w[i].substr(0, eq), value = w[i].substr(eq + 1);
        auto n = ParseSize(value);
        if (!n.ok()) return bad(key + ": " + n.status().message());
        if (key == "bytes" || key == "host_bytes") {
          q.max_bytes = *n;
        } else if (key == "device_bytes") {
          q.max_device_bytes = *n;
        } else if (key == "spill_bytes") {
          q.max_spill_bytes = *n;
        } else if (key == "entries") {
          q.max_entries = *n;
        } else if (key == "connections") {
          q.max_connections = *n;
        } else if (key == "waiters") {
          q.max_waiters = *n;
        } else {
          return bad("unknown quota '" + key +
                     "'; use bytes (host_bytes), device_bytes, spill_bytes, entries, connections "
                     "or waiters");
        }
      }
      continue;
    }
    if (w.size() != 4) {
      return bad("want 'name namespace role token' (or 'quota namespace name=value...'), got " +
                 std::to_string(w.size()) + " words");
    }
    Tenant t;
    t.name = w[0];
    auto role = ParseRole(w[2]);
    if (!role.ok()) return bad(role.status().message());
    t.role = *role;
    const std::string& token = w[3];
    if (token.rfind("sha256:", 0) == 0) {
      std::string_view hex(token);
      hex.remove_prefix(7);
      if (hex.size() != 64) return bad("sha256: wants 64 hex digits");
      for (size_t i = 0; i < 32; ++i) {
        int hi = HexDigit(hex[2 * i]), lo = HexDigit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return bad("sha256: wants 64 hex digits");
        t.token_sha256[i] = static_cast<unsigned char>(hi * 16 + lo);
      }
    } else {
      if (token.size() < 16) {
        return bad("tenant " + t.name + ": a token needs at least 16 characters");
      }
      t.token_sha256 = Sha256(token);
    }
    for (const Tenant& o : c.tenants_) {
      if (o.name == t.name) return bad("tenant " + t.name + " appears twice");
      if (CRYPTO_memcmp(o.token_sha256.data(), t.token_sha256.data(), 32) == 0) {
        return bad("tenants " + o.name + " and " + t.name + " share a token");
      }
    }
    t.ns = c.Intern(w[1]);
    c.tenants_.push_back(std::move(t));
  }
  if (c.tenants_.empty()) return Status::InvalidArgument(std::string(origin) + " names no tenant");
  for (size_t i = 0; i < c.store_ids_.size(); ++i) {
    for (size_t j = i + 1; j < c.store_ids_.size(); ++j) {
      if (c.store_ids_[i] == c.store_ids_[j]) {
        return Status::InvalidArgument(std::string(origin) + ": namespaces '" + c.namespaces_[i] +
                                       "' and '" + c.namespaces_[j] +
                                       "' hash to the same id; rename one");
      }
    }
  }
  return c;
}

Result<Credentials> Credentials::LoadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::InvalidArgument("cannot read the tokens file " + path);
  std::stringstream all;
  all << in.rdbuf();
  return Parse(all.str(), path);
}

const Tenant* Credentials::Authenticate(std::string_view token) const {
  auto digest = Sha256(token);
  const Tenant* found = nullptr;
  for (const Tenant& t : tenants_) {  // every entry, whatever matched: no timing hint
    if (CRYPTO_memcmp(t.token_sha256.data(), digest.data(), digest.size()) == 0) found = &t;
  }
  return found;
}

bool RoleAllows(Role role, Op op) {
  switch (op) {
    case Op::kInsert:
    case Op::kInsertMany:
    case Op::kDropSelect:
    case Op::kRemove:
    case Op::kRetain:
    case Op::kAck:
      return role != Role::kReader;
    default:
      return true;
  }
}

}  // namespace kvstore::server
