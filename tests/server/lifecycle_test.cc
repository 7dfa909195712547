// Start-up and shutdown of the daemon as an operator sees them.
#include <csignal>
#include <future>

#include "test_util.h"

namespace kvstore::testing {
namespace {

using namespace std::chrono_literals;

TEST(Lifecycle, SigtermReleasesWaitersWithUnavailableAndExitsZero) {
  auto d = StartDaemon();
  ASSERT_NE(d, nullptr);
  auto c = ConnectTo(*d);
  std::vector<Key> keys{TestKey(1)};
  auto waiting = std::async(std::launch::async, [&] { return c->DropSelect(keys, 60s); });
  ASSERT_TRUE(Eventually([&] { return d->Metric("kvstore_waiters") == 1.0; }));
  EXPECT_EQ(d->StopWith(SIGTERM), 0);
  auto r = waiting.get();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
  EXPECT_NE(r.status().message().find("shutting down"), std::string::npos) << r.status().ToString();
}

TEST(Lifecycle, UnreachableDaemonIsUnavailableWithTheAddress) {
  ClientOptions o;
  o.address = "127.0.0.1:" + std::to_string(FreePort());
  o.connect_timeout = 2s;
  auto c = Client::Connect(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(c.status().message().find(o.address), std::string::npos) << c.status().ToString();
}

TEST(Lifecycle, BadFlagsExplainThemselves) {
  DaemonOptions o;
  o.args = {"--memory", "lots"};
  std::string error;
  auto d = TestDaemon::Start(o, &error);
  EXPECT_EQ(d, nullptr);
  EXPECT_NE(error.find("--memory"), std::string::npos) << error;
}

TEST(Lifecycle, TokenIsRequiredWhenConfigured) {
  TempDir dir;
  std::string token_path = dir.path() + "/token";
  {
    FILE* f = std::fopen(token_path.c_str(), "w");
    std::fputs("s3cret\n", f);
    std::fclose(f);
  }
  auto d = StartDaemon({"--token-file", token_path});
  ASSERT_NE(d, nullptr);
  ClientOptions o;
  o.address = d->address();
  o.token = "wrong";
  auto bad = Client::Connect(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kPermissionDenied) << bad.status().ToString();
  o.token = "s3cret";
  auto good = Client::Connect(o);
  ASSERT_OK(good);
  ASSERT_OK((*good)->Ping());
}

}  // namespace
}  // namespace kvstore::testing
