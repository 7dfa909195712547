// Who a connection is: the tenants of a --tokens-file (or the one tenant of
// the older --token-file), each bound to a namespace and a role, and what each
// role may do.
//
// Tokens file, one tenant per line (blank lines and `#` comments ignored):
//
//   # name       namespace  role    token (plain, or sha256:<64 hex digits>)
//   prefill-a    team-a     engine
//   sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 dash-a       team-a
//   reader  a-long-random-token ops          default    admin   sha256:... # quotas per namespace
//   (0 or absent = unlimited); sizes take KiB/MiB/GiB quota team-a connections=64 waiters=1024
//   bytes=8GiB entries=100000
//
// Tokens are compared as SHA-256 digests in constant time; the file may hold
// only digests (`printf %s TOKEN | sha256sum`).
//
// Thread-safety: immutable after loading; safe to share.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kvstore/server/metrics.h"
#include "kvstore/status.h"
#include "kvstore/tiers/namespace_id.h"

namespace kvstore::server {

enum class Role : uint8_t {
  kEngine = 0,  // insert, select, drop_select, match, retain, remove, list/stats of its namespace
  kReader =
      1,       // select, match, list, stats of its namespace; nothing that changes or takes entries
  kAdmin = 2,  // everything an engine may, and list/stats across every namespace
};
std::string_view RoleName(Role r);
Result<Role> ParseRole(std::string_view name);

// Index into Credentials::namespaces(); 0 is "default". The store knows a
// namespace by StoreId(index) instead: derived from its name, so reordering
// the tokens file never moves a namespace's stored (spilled) entries to
// another.
using NamespaceIndex = uint32_t;

struct NamespaceLimits {   // 0 = unlimited
  uint64_t max_bytes = 0;  // host tier ("bytes" / "host_bytes")
  uint64_t max_device_bytes = 0;
  uint64_t max_spill_bytes = 0;
  uint64_t max_entries = 0;
  uint64_t max_connections = 0;
  uint64_t max_waiters = 0;
};

struct Tenant {
  std::string name;
  NamespaceIndex ns = 0;
  Role role = Role::kAdmin;
  std::array<unsigned char, 32> token_sha256{};
};

class Credentials {
 public:
  // No tokens: nothing to authenticate; every connection is the anonymous
  // admin of namespace "default".
  Credentials();
  // The --token-file secret: one admin tenant "default" in namespace "default".
  static Credentials SingleToken(std::string_view token);
  // `origin` names the text in errors (a path).
  static Result<Credentials> Parse(std::string_view text, std::string_view origin);
  static Result<Credentials> LoadFile(const std::string& path);

  bool required() const { return !tenants_.empty(); }
  // The tenant whose token this is, or null. Constant time in the token.
  const Tenant* Authenticate(std::string_view token) const;
  const Tenant& anonymous() const { return anonymous_; }
  const std::vector<Tenant>& tenants() const { return tenants_; }
  const std::vector<std::string>& namespaces() const { return namespaces_; }
  const std::string& NamespaceName(NamespaceIndex i) const { return namespaces_.at(i); }
  const NamespaceLimits& quota(NamespaceIndex i) const { return quotas_.at(i); }
  // The store's id of a namespace: 0 for "default", else 32 bits of
  // SHA-256(name) (never 0 or kAllNamespaces; two names that collide are
  // refused at load).
  NamespaceId StoreId(NamespaceIndex i) const { return store_ids_.at(i); }
  // The namespace index of a store id, or -1.
  int64_t IndexOf(NamespaceId store_id) const;

 private:
  NamespaceIndex Intern(std::string_view ns);
  std::vector<NamespaceId> store_ids_;  // by NamespaceIndex
  std::vector<Tenant> tenants_;
  std::vector<std::string> namespaces_;
  std::vector<NamespaceLimits> quotas_;  // by NamespaceId
  Tenant anonymous_;
};

// Whether `role` may make requests of kind `op` at all (namespaces are
// checked separately, per key).
bool RoleAllows(Role role, Op op);

}  // namespace kvstore::server
