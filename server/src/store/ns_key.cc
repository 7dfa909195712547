#include "kvstore/server/ns_key.h"

#include <array>
#include <cstring>
#include <random>

#include <xxhash.h>

namespace kvstore::server {
namespace {

// XXH3 wants a secret of at least XXH3_SECRET_SIZE_MIN (136) random-looking bytes.
struct Secret {
  alignas(64) std::array<unsigned char, 192> bytes{};
  Secret() {
    std::random_device rd;  // getrandom(2) on Linux
    for (size_t i = 0; i < bytes.size(); i += 4) {
      const uint32_t v = rd();
      std::memcpy(bytes.data() + i, &v, 4);
    }
  }
};
static_assert(sizeof(Secret::bytes) >= XXH3_SECRET_SIZE_MIN);

const Secret& TheSecret() {
  static const Secret s;
  return s;
}

}  // namespace

uint64_t IndexHash(NamespaceId ns, const Key& key) noexcept {
  unsigned char buf[4 + Key::kSize];
  std::memcpy(buf, &ns, 4);
  std::memcpy(buf + 4, key.bytes.data(), Key::kSize);
  const Secret& s = TheSecret();
  return XXH3_64bits_withSecret(buf, sizeof(buf), s.bytes.data(), s.bytes.size());
}

}  // namespace kvstore::server
