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

TEST(Lifecycle, DeviceMemoryFlagWithoutAGpuSaysOnceTheTierIsAbsentAndServes) {
  auto d = StartDaemon({"--device-memory", "64MiB"});
  ASSERT_NE(d, nullptr);
  auto c = ConnectTo(*d);
  ASSERT_NE(c, nullptr);
  const auto value = RandomBytes(300000, 7);
  std::vector<Key> keys{TestKey(1)};
  ASSERT_OK(c->Insert(keys[0], value));
  auto read = c->Select(keys);
  ASSERT_OK(read);
  ASSERT_EQ(read->size(), 1u);
  EXPECT_EQ((*read)[0].value, value);
  auto taken = c->DropSelect(keys, 5s);
  ASSERT_OK(taken);
  ASSERT_EQ(taken->size(), 1u);
  EXPECT_EQ((*taken)[0].value, value);

  // Exactly one start-up line is about the device tier, and it says why.
  std::string log = d->Log();
  std::vector<std::string> device_lines;
  for (size_t at = 0; at < log.size();) {
    size_t end = log.find('\n', at);
    if (end == std::string::npos) end = log.size();
    std::string line = log.substr(at, end - at);
    if (line.find("device tier") != std::string::npos) device_lines.push_back(line);
    at = end + 1;
  }
  ASSERT_EQ(device_lines.size(), 1u) << log;
  const std::string& line = device_lines[0];
  auto stats = c->Stats();
  ASSERT_OK(stats);
  bool device_row = false;
  for (const auto& t : stats->tiers) device_row |= t.tier == Tier::kDevice;
  if (line.find("no GPU") == std::string::npos) {
    // A machine with a GPU: the tier is there, and the value was staged to be sent.
    EXPECT_TRUE(device_row) << line;
    EXPECT_EQ(stats->staged_transfers, 1u) << line;
    return;
  }
  EXPECT_NE(line.find("gpu: no GPU: "), std::string::npos) << line;
  EXPECT_NE(line.find("device tier absent although --device-memory 64 MiB was given"),
            std::string::npos)
      << line;
  EXPECT_NE(line.find("values live in the host arena"), std::string::npos) << line;
  // Everything else as without the flag: no device row, nothing staged.
  EXPECT_FALSE(device_row);
  EXPECT_EQ(stats->staged_transfers, 0u);
  EXPECT_FALSE(d->Metric("kvstore_entries", {{"tier", "device"}}).has_value());
  EXPECT_EQ(d->Metric("kvstore_staged_transfers_total"), 0.0);
  EXPECT_EQ(d->Metric("kvstore_entries", {{"tier", "host"}}), 0.0);
}

}  // namespace
}  // namespace kvstore::testing
