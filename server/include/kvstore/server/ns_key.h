// What the store's index is keyed by: a key within its namespace, and the
// keyed hash the index and the waiter table use for it.
//
// Keys come from clients, so the hash must not let a client choose keys that
// collide: it is XXH3-64 of all 36 bytes (namespace and whole key) under a
// secret drawn from the OS at process start (never the same twice, never
// written anywhere).
//
// Thread-safety: pure functions; the secret is immutable after static init.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kvstore/key.h"
#include "kvstore/tiers/namespace_id.h"

namespace kvstore::server {

struct NsKey {
  NamespaceId ns = kDefaultNamespace;
  Key key;
  bool operator==(const NsKey&) const = default;
  auto operator<=>(const NsKey&) const = default;
};

// The keyed 64-bit hash of (ns, key).
uint64_t IndexHash(NamespaceId ns, const Key& key) noexcept;

struct NsKeyHash {
  size_t operator()(const NsKey& k) const noexcept { return IndexHash(k.ns, k.key); }
};

}  // namespace kvstore::server
