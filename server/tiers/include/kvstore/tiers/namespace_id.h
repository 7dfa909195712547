// Namespaces (tenants) of the store: every stored key lives in exactly one.
//
// The same 32-byte key in two namespaces names two unrelated entries; no call
// made for one namespace sees, takes or removes another's. Namespace 0 is the
// default namespace, the one every caller gets unless a credential binds it to
// another.
#pragma once

#include <cstdint>

namespace kvstore {

using NamespaceId = uint32_t;
inline constexpr NamespaceId kDefaultNamespace = 0;
// Only for admin calls that look at every namespace at once (List, Stats).
inline constexpr NamespaceId kAllNamespaces = 0xffffffffu;

}  // namespace kvstore
