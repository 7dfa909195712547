// Where a key lives in a cluster: weighted rendezvous (highest random weight)
// hashing over the live members.
//
// Each member scores each key: score = weight / -ln(u), u = a uniform hash of
// (key, member id) in (0, 1); the key's home is the member with the highest
// score (ties: the smaller id). So every client with the same membership
// computes the same home, a member's share of keys is its weight's share of
// the total, and a join or leave moves only the keys whose home changed (to
// the joiner, or away from the leaver). Weights come from each member's
// capacity; ids, not addresses, are hashed, so a node restarted with the same
// data dir keeps its keys' homes (and its spilled entries stay findable).
//
// Thread-safety: immutable after construction; share it freely.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "kvstore/cluster/membership.h"
#include "kvstore/key.h"

namespace kvstore::cluster {

// The weight placement gives a member: its capacity in MiB, at least 1.
double MemberWeight(const Member& m);
// The rendezvous score of `key` on a member with `id` and `weight`.
double RendezvousScore(const Key& key, std::string_view id, double weight);

class Placement {
 public:
  // Members in any order; they are kept sorted by id.
  explicit Placement(std::vector<Member> members = {});

  bool empty() const { return members_.empty(); }
  const std::vector<Member>& members() const { return members_; }
  // REQUIRES: !empty(). Index into members() of the key's home.
  size_t HomeIndex(const Key& key) const;
  // REQUIRES: !empty().
  const Member& Home(const Key& key) const { return members_[HomeIndex(key)]; }
  // nullptr when no member has this id / address.
  const Member* FindById(std::string_view id) const;
  const Member* FindByAddress(std::string_view address) const;

 private:
  std::vector<Member> members_;
  std::vector<double> weights_;
  std::vector<uint64_t> seeds_;  // hash of each member's id
};

}  // namespace kvstore::cluster
