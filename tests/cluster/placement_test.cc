// Placement without daemons: spread, weights, the keys a join or leave moves,
// and the cluster address and member record formats.
#include "kvstore/cluster/placement.h"

#include <gtest/gtest.h>

#include "status_matchers.h"

#include <map>

#include "kvstore/cluster/etcd_client.h"
#include "kvstore/cluster/membership.h"

namespace kvstore::cluster {
namespace {

Member M(const std::string& id, uint64_t capacity = 1ull << 30) {
  Member m;
  m.id = id;
  m.address = "127.0.0.1:" + std::to_string(7000 + id.size() * 7 + id.back());
  m.capacity_bytes = capacity;
  return m;
}

std::vector<Key> Keys(size_t n) {
  std::vector<Key> keys;
  keys.reserve(n);
  for (size_t i = 0; i < n; ++i) keys.push_back(NamespaceSeed("key-" + std::to_string(i)));
  return keys;
}

TEST(Placement, TenThousandKeysSpreadEvenlyOverThreeEqualNodes) {
  Placement p({M("a1f0"), M("b2e1"), M("c3d2")});
  std::map<std::string, size_t> count;
  for (const auto& k : Keys(10000)) ++count[p.Home(k).id];
  ASSERT_EQ(count.size(), 3u);
  for (const auto& [id, n] : count) {
    EXPECT_GE(n, 3000u) << id;  // 10000 / 3 within +-10%
    EXPECT_LE(n, 3667u) << id;
  }
}

TEST(Placement, WeightsFollowCapacity) {
  Placement p({M("big", 2ull << 30), M("small", 1ull << 30)});
  size_t big = 0;
  const size_t n = 10000;
  for (const auto& k : Keys(n)) big += p.Home(k).id == "big";
  EXPECT_NEAR(static_cast<double>(big) / n, 2.0 / 3.0, 0.03);
}

TEST(Placement, AJoinMovesAboutAQuarterAndOnlyToTheJoiner) {
  Placement three({M("a1f0"), M("b2e1"), M("c3d2")});
  Placement four({M("a1f0"), M("b2e1"), M("c3d2"), M("d4c3")});
  size_t moved = 0;
  const auto keys = Keys(10000);
  for (const auto& k : keys) {
    const auto& before = three.Home(k);
    const auto& after = four.Home(k);
    if (before.id != after.id) {
      ++moved;
      EXPECT_EQ(after.id, "d4c3") << "a key moved between two old nodes";
    }
  }
  EXPECT_GE(moved, 2200u);
  EXPECT_LE(moved, 2800u);
}

TEST(Placement, ALeaveMovesOnlyTheLeaversKeys) {
  Placement three({M("a1f0"), M("b2e1"), M("c3d2")});
  Placement two({M("a1f0"), M("c3d2")});
  for (const auto& k : Keys(5000)) {
    if (three.Home(k).id != "b2e1") EXPECT_EQ(two.Home(k).id, three.Home(k).id);
  }
}

TEST(Placement, OrderOfMembersDoesNotMatter) {
  Placement x({M("a1f0"), M("b2e1"), M("c3d2")});
  Placement y({M("c3d2"), M("a1f0"), M("b2e1")});
  for (const auto& k : Keys(1000)) EXPECT_EQ(x.Home(k).id, y.Home(k).id);
}

TEST(ClusterUrl, ParsesEndpointsAndName) {
  auto u = ParseClusterUrl("etcd://10.0.0.1:2379,10.0.0.2:2379/prod-a");
  ASSERT_OK(u);
  EXPECT_EQ(u->endpoints, (std::vector<std::string>{"10.0.0.1:2379", "10.0.0.2:2379"}));
  EXPECT_EQ(u->name, "prod-a");
  EXPECT_EQ(MembersPrefix(*u), "/kvstore/prod-a/members/");
  for (const char* bad : {"10.0.0.1:2379", "etcd://10.0.0.1:2379", "etcd://10.0.0.1:2379/",
                          "etcd://10.0.0.1/x", "etcd://:2379/x", "etcd://h:1/a/b"}) {
    EXPECT_EQ(ParseClusterUrl(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(IsClusterUrl("etcd://h:1/x"));
  EXPECT_FALSE(IsClusterUrl("127.0.0.1:7400"));
}

TEST(MemberRecord, RoundTrips) {
  Member m = M("a1f0");
  m.transports = {"tcp", "local"};
  m.spill_bytes = 5;
  m.metrics = "127.0.0.1:9400";
  m.version = "0.1.0";
  m.started_unix_ms = 123;
  auto back = DecodeMember(EncodeMember(m));
  ASSERT_OK(back);
  EXPECT_EQ(*back, m);
  EXPECT_EQ(DecodeMember("{\"id\":\"x\"}").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeMember("not json").status().code(), StatusCode::kInvalidArgument);
}

TEST(Membership, NumbersOutOfTypeAreRefusedByName) {
  // A float far beyond 2^64, a negative count, a string, a non-object record:
  // each refused naming what is wrong, never converted.
  for (const char* bad : {R"({"id":"n1","address":"h:1","started_unix_ms":3.7e33})",
                          R"({"id":"n1","address":"h:1","capacity_bytes":-5})",
                          R"({"id":"n1","address":"h:1","spill_bytes":"12"})", R"([1,2])"}) {
    auto m = DecodeMember(bad);
    ASSERT_FALSE(m.ok()) << bad;
    EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  auto m = DecodeMember(R"({"id":"n1","address":"h:1","capacity_bytes":1.5})");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("capacity_bytes"), std::string::npos) << m.status().message();
}

TEST(Base64, RoundTripsEveryLength) {
  std::string s;
  for (int i = 0; i < 40; ++i) {
    auto back = Base64Decode(Base64Encode(s));
    ASSERT_OK(back);
    EXPECT_EQ(*back, s);
    s += static_cast<char>(i * 37 + 200);
  }
  EXPECT_EQ(Base64Encode("a"), "YQ==");
  EXPECT_EQ(PrefixRangeEnd("/kvstore/x/"), "/kvstore/x0");
}

}  // namespace
}  // namespace kvstore::cluster
