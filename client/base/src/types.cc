#include "kvstore/types.h"

#include <xxhash.h>

namespace kvstore {

std::string_view TierName(Tier t) {
  switch (t) {
    case Tier::kDevice:
      return "device";
    case Tier::kHost:
      return "host";
    case Tier::kSpill:
      return "spill";
  }
  return "unknown";
}

uint64_t ValueChecksum(std::span<const std::byte> value) {
  return XXH3_64bits(value.data(), value.size());
}

}  // namespace kvstore
