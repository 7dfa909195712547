#include "kvstore/cluster/placement.h"

#include <algorithm>
#include <cmath>

#include <xxhash.h>

namespace kvstore::cluster {

double MemberWeight(const Member& m) {
  return std::max(1.0, static_cast<double>(m.capacity_bytes >> 20));
}

namespace {
uint64_t IdSeed(std::string_view id) { return XXH3_64bits(id.data(), id.size()); }

double Score(const Key& key, uint64_t seed, double weight) {
  const uint64_t h = XXH3_64bits_withSeed(key.bytes.data(), key.bytes.size(), seed);
  // 53 bits into (0, 1): never 0 or 1, so the logarithm is finite and negative.
  const double u = (static_cast<double>(h >> 11) + 0.5) * 0x1.0p-53;
  return weight / -std::log(u);
}
}  // namespace

double RendezvousScore(const Key& key, std::string_view id, double weight) {
  return Score(key, IdSeed(id), weight);
}

Placement::Placement(std::vector<Member> members) : members_(std::move(members)) {
  std::sort(members_.begin(), members_.end(),
            [](const Member& a, const Member& b) { return a.id < b.id; });
  weights_.reserve(members_.size());
  seeds_.reserve(members_.size());
  for (const auto& m : members_) {
    weights_.push_back(MemberWeight(m));
    seeds_.push_back(IdSeed(m.id));
  }
}

size_t Placement::HomeIndex(const Key& key) const {
  if (members_.size() == 1) return 0;
  size_t best = 0;
  double best_score = -1;
  for (size_t i = 0; i < members_.size(); ++i) {
    double s = Score(key, seeds_[i], weights_[i]);
    if (s > best_score) {  // strict: on a tie the earlier (smaller) id stays
      best = i;
      best_score = s;
    }
  }
  return best;
}

const Member* Placement::FindById(std::string_view id) const {
  for (const auto& m : members_) {
    if (m.id == id) return &m;
  }
  return nullptr;
}

const Member* Placement::FindByAddress(std::string_view address) const {
  for (const auto& m : members_) {
    if (m.address == address) return &m;
  }
  return nullptr;
}

}  // namespace kvstore::cluster
