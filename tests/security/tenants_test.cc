// Tenants: tokens bound to a namespace and a role. A wrong or missing token
// gets nothing; a reader cannot change or take entries; namespace quotas
// refuse with ResourceExhausted naming the quota; clients read their token
// from a file or KVSTORE_TOKEN; keys of one namespace are invisible to another.
#include <cstdlib>
#include <fstream>
#include <future>

#include "security_util.h"

namespace kvstore::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kTokenA = "token-of-engine-a-0123456789";
constexpr const char* kTokenReader = "token-of-reader-a-0123456789";
constexpr const char* kTokenB = "token-of-engine-b-0123456789";
constexpr const char* kTokenC = "token-of-engine-c-0123456789";
constexpr const char* kTokenD = "token-of-engine-d-0123456789";
constexpr const char* kTokenAdmin = "token-of-the-admin-0123456789";
// sha256 of kTokenReader: the file may hold digests only.
constexpr const char* kReaderDigest =
    "sha256:098935502a0a94209c0221b3aeb418b09b543d00219dae8ceb3e0df6d4868e79";

class Tenants : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<TempDir>("kvstore-tenants");
    tokens_ = dir_->path() + "/tokens";
    std::ofstream f(tokens_);
    f << "# name namespace role token\n"
      << "engine-a team-a engine " << kTokenA << "\n"
      << "reader-a team-a reader " << kReaderDigest << "\n"
      << "engine-b team-b engine " << kTokenB << "\n"
      << "engine-c team-c engine " << kTokenC << "\n"
      << "engine-d team-d engine " << kTokenD << "\n"
      << "ops default admin " << kTokenAdmin << "\n"
      << "quota team-d entries=2 bytes=1MiB\n"
      << "quota team-b connections=3\n"
      << "quota team-c waiters=1\n";
    f.close();
    daemon_ = StartDaemon({"--tokens-file", tokens_});
    ASSERT_NE(daemon_, nullptr);
  }
  Result<std::unique_ptr<Client>> As(const std::string& token, size_t pool = 4) {
    ClientOptions o;
    o.address = daemon_->address();
    o.token = token;
    o.max_connections = pool;
    return Client::Connect(o);
  }
  std::unique_ptr<TempDir> dir_;
  std::string tokens_;
  std::unique_ptr<TestDaemon> daemon_;
};

TEST_F(Tenants, WrongOrMissingTokenGetsNothing) {
  for (const std::string& t : {std::string(), std::string("not-a-token-of-anyone-here")}) {
    ::unsetenv("KVSTORE_TOKEN");
    auto c = As(t);
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.status().code(), StatusCode::kPermissionDenied) << c.status().ToString();
  }
  auto a = As(kTokenA);
  ASSERT_OK(a);
  ASSERT_OK((*a)->Ping());
}

TEST_F(Tenants, TokenComesFromAFileOrTheEnvironment) {
  std::string file = dir_->path() + "/my-token";
  std::ofstream(file) << kTokenA << "\n";
  ClientOptions o;
  o.address = daemon_->address();
  o.token_file = file;
  auto c = Client::Connect(o);
  ASSERT_OK(c);
  ASSERT_OK((*c)->Ping());
  ::setenv("KVSTORE_TOKEN", kTokenA, 1);
  ClientOptions e;
  e.address = daemon_->address();
  auto c2 = Client::Connect(e);
  ::unsetenv("KVSTORE_TOKEN");
  ASSERT_OK(c2);
  ASSERT_OK((*c2)->Ping());
}

TEST_F(Tenants, ReaderCanReadButNeitherChangeNorTake) {
  auto engine = As(kTokenA);
  auto reader = As(kTokenReader);
  ASSERT_OK(engine);
  ASSERT_OK(reader);
  Key k = TestKey(1);
  auto value = RandomBytes(10000, 1);
  ASSERT_OK((*engine)->Insert(k, value));
  std::vector<Key> keys{k};
  auto got = (*reader)->Select(keys);
  ASSERT_OK(got);
  EXPECT_EQ((*got)[0].value, value);
  auto match = (*reader)->MatchPrefix(keys);
  ASSERT_OK(match);
  EXPECT_EQ(*match, 1u);
  ASSERT_OK((*reader)->List({}));
  auto ins = (*reader)->Insert(TestKey(2), value);
  EXPECT_EQ(ins.status().code(), StatusCode::kPermissionDenied) << ins.status().ToString();
  EXPECT_NE(ins.status().message().find("reader"), std::string::npos) << ins.status().message();
  EXPECT_EQ((*reader)->DropSelect(keys, 100ms).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ((*reader)->Remove(keys).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ((*reader)->Retain(keys).status().code(), StatusCode::kPermissionDenied);
  // Nothing changed: the engine still takes the entry.
  auto taken = (*engine)->DropSelect(keys, 2s);
  ASSERT_OK(taken);
  EXPECT_EQ((*taken)[0].value, value);
}

TEST_F(Tenants, ConnectionQuotaRefusesWithItsName) {
  std::vector<std::unique_ptr<Client>> held;
  for (int i = 0; i < 3; ++i) {
    auto c = As(kTokenB, 1);
    ASSERT_OK(c);
    held.push_back(std::move(c).value());
  }
  auto over = As(kTokenB, 1);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.status().code(), StatusCode::kResourceExhausted) << over.status().ToString();
  EXPECT_NE(over.status().message().find("quota connections"), std::string::npos)
      << over.status().message();
  EXPECT_NE(over.status().message().find("team-b"), std::string::npos) << over.status().message();
  // Other namespaces are not affected, and a freed place is taken again.
  ASSERT_OK(As(kTokenA));
  held.pop_back();
  EXPECT_TRUE(Eventually([&] { return As(kTokenB, 1).ok(); }));
  EXPECT_GE(daemon_
                ->Metric("kvstore_quota_refusals_total",
                         {{"namespace", "team-b"}, {"quota", "connections"}})
                .value_or(0),
            1.0);
}

TEST_F(Tenants, WaiterQuotaRefusesWithItsName) {
  auto c = As(kTokenC);
  ASSERT_OK(c);
  Key k = TestKey(3);
  std::vector<Key> keys{k};
  auto first = std::async(std::launch::async, [&] { return (*c)->DropSelect(keys, 20s); });
  ASSERT_TRUE(Eventually([&] { return daemon_->Metric("kvstore_waiters") == 1.0; }));
  auto second = (*c)->DropSelect(keys, 5s);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kResourceExhausted) << second.status().ToString();
  EXPECT_NE(second.status().message().find("quota waiters"), std::string::npos)
      << second.status().message();
  // The first waiter is unaffected and served.
  ASSERT_OK((*c)->Insert(k, RandomBytes(100, 3)));
  ASSERT_OK(first.get());
}

TEST_F(Tenants, StoreQuotasRefuseNamingTheNamespace) {
  auto d = As(kTokenD);
  ASSERT_OK(d);
  auto big = (*d)->Insert(TestKey(10), RandomBytes(2 << 20, 10));
  EXPECT_EQ(big.status().code(), StatusCode::kResourceExhausted) << big.status().ToString();
  EXPECT_NE(big.status().message().find("team-d"), std::string::npos) << big.status().message();
  EXPECT_NE(big.status().message().find("quota"), std::string::npos) << big.status().message();
  ASSERT_OK((*d)->Insert(TestKey(11), RandomBytes(1000, 11)));
  ASSERT_OK((*d)->Insert(TestKey(12), RandomBytes(1000, 12)));
  auto third = (*d)->Insert(TestKey(13), RandomBytes(1000, 13));
  EXPECT_EQ(third.status().code(), StatusCode::kResourceExhausted) << third.status().ToString();
  EXPECT_NE(third.status().message().find("entries"), std::string::npos)
      << third.status().message();
  // Another namespace is not bound by team-d's quota.
  auto a = As(kTokenA);
  ASSERT_OK(a);
  ASSERT_OK((*a)->Insert(TestKey(13), RandomBytes(2 << 20, 13)));
  EXPECT_GE(daemon_->Metric("kvstore_namespace_entries", {{"namespace", "team-d"}}).value_or(0),
            2.0);
}

TEST_F(Tenants, NamespacesDoNotSeeEachOthersKeys) {
  auto a = As(kTokenA);
  auto b = As(kTokenB);
  ASSERT_OK(a);
  ASSERT_OK(b);
  Key k = TestKey(4);
  auto value = RandomBytes(5000, 4);
  ASSERT_OK((*a)->Insert(k, value));
  std::vector<Key> keys{k};
  EXPECT_EQ((*b)->Select(keys).status().code(), StatusCode::kNotFound);
  auto match = (*b)->MatchPrefix(keys);
  ASSERT_OK(match);
  EXPECT_EQ(*match, 0u);
  EXPECT_EQ((*b)->DropSelect(keys, 200ms).status().code(), StatusCode::kTimeout);
  auto removed = (*b)->Remove(keys);
  ASSERT_OK(removed);
  EXPECT_EQ(*removed, 0u);
  auto listed = (*b)->List({});
  ASSERT_OK(listed);
  for (const auto& e : listed->entries) EXPECT_NE(e.key, k) << "team-b lists team-a's key";
  // The same key in team-b is another entry; team-a's is untouched.
  ASSERT_OK((*b)->Insert(k, RandomBytes(10, 9)));
  auto mine = (*a)->Select(keys);
  ASSERT_OK(mine);
  EXPECT_EQ((*mine)[0].value, value);
  // The admin lists every namespace.
  auto admin = As(kTokenAdmin);
  ASSERT_OK(admin);
  auto all = (*admin)->List({});
  ASSERT_OK(all);
  EXPECT_EQ(all->entries.size(), 2u);
}

}  // namespace
}  // namespace kvstore::testing
