#include "kvstore/engine/engine_options.h"

namespace kvstore::engine {

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kBoth:
      return "both";
    case Role::kPrefill:
      return "prefill";
    case Role::kDecode:
      return "decode";
    case Role::kProxy:
      return "proxy";
  }
  return "unknown";
}

Result<Role> ParseRole(std::string_view text) {
  for (Role r : {Role::kBoth, Role::kPrefill, Role::kDecode, Role::kProxy})
    if (text == RoleName(r)) return r;
  return Status::InvalidArgument("--role \"" + std::string(text) +
                                 "\": expected prefill, decode, both or proxy");
}

std::string_view KvMissPolicyName(KvMissPolicy policy) {
  return policy == KvMissPolicy::kFail ? "fail" : "recompute";
}

Result<KvMissPolicy> ParseKvMissPolicy(std::string_view text) {
  if (text == "recompute") return KvMissPolicy::kRecompute;
  if (text == "fail") return KvMissPolicy::kFail;
  return Status::InvalidArgument("--on-kv-miss \"" + std::string(text) +
                                 "\": expected recompute or fail");
}

}  // namespace kvstore::engine
