// Durable mode (--durability sync) against kill -9: every insert the daemon
// acknowledged is there, byte-exact, after a restart on the same data dir,
// including those the host tier still held when the daemon died. Several
// writers at once, so acknowledgements come from shared group flushes.
#include <signal.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "kvstore/client.h"
#include "status_matchers.h"
#include "test_daemon.h"
#include "values.h"

namespace kvstore::chaos {
namespace {

using testing::DaemonOptions;
using testing::TempDir;
using testing::TestDaemon;

std::unique_ptr<Client> ConnectTo(const TestDaemon& d) {
  ClientOptions o;
  o.address = d.address();
  o.max_connections = 8;
  auto c = Client::Connect(o);
  EXPECT_OK(c);
  return c.ok() ? std::move(c).value() : nullptr;
}

TEST(DurableKill, AcknowledgedInsertsSurviveKill9) {
  TempDir dir("kvstore-durable-kill");
  DaemonOptions o;
  // 64 MiB of host memory holds everything: without write-through, kill -9 loses it all.
  o.args = {"--memory", "64MiB", "--spill", "1GiB", "--ttl", "0", "--durability", "sync"};
  o.data_dir = dir.path();
  std::string error;
  auto daemon = TestDaemon::Start(o, &error);
  ASSERT_NE(daemon, nullptr) << error;
  auto client = ConnectTo(*daemon);
  ASSERT_NE(client, nullptr);

  constexpr int kWriters = 4, kPerWriter = 15;
  const uint64_t run = 0xd00d;
  std::vector<std::vector<uint64_t>> acked(kWriters);
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      for (int j = 0; j < kPerWriter; ++j) {
        const uint64_t i = static_cast<uint64_t>(w * kPerWriter + j);
        const Key key = ChaosKey(run, i);
        auto r = client->Insert(key, ValueFor(key, SizeFor(key, 4 << 10, 1 << 20)));
        EXPECT_OK(r) << "insert " << i;
        if (r.ok()) acked[w].push_back(i);
      }
    });
  }
  for (auto& t : writers) t.join();
  client.reset();
  ASSERT_EQ(daemon->StopWith(SIGKILL), 128 + SIGKILL);

  daemon = TestDaemon::Start(o, &error);
  ASSERT_NE(daemon, nullptr) << "restart after kill -9: " << error;
  client = ConnectTo(*daemon);
  ASSERT_NE(client, nullptr);
  size_t checked = 0;
  for (const auto& list : acked) {
    for (uint64_t i : list) {
      const Key key = ChaosKey(run, i);
      auto got = client->Select(std::span<const Key>(&key, 1));
      ASSERT_OK(got) << "acknowledged insert " << i << " lost by kill -9";
      const size_t size = SizeFor(key, 4 << 10, 1 << 20);
      auto wrong = CheckValue(key, size, (*got)[0].meta, (*got)[0].value);
      EXPECT_FALSE(wrong.has_value()) << "insert " << i << ": " << *wrong;
      ++checked;
    }
  }
  EXPECT_EQ(checked, static_cast<size_t>(kWriters * kPerWriter));
}

TEST(DurableKill, DurableModeWithoutSpillIsRefusedAtStart) {
  DaemonOptions o;
  o.args = {"--durability", "sync"};
  std::string error;
  auto daemon = TestDaemon::Start(o, &error);
  ASSERT_EQ(daemon, nullptr);
  EXPECT_NE(error.find("--durability sync needs a spill tier"), std::string::npos) << error;
}

}  // namespace
}  // namespace kvstore::chaos
