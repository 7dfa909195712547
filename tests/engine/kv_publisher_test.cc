// The prefill side's KvPublisher against a real kvstored over the local
// transport: blocks packed into the staging region (shared memory) that queue
// up together go out as one insert_many, and the store pulls each of them
// one-sided instead of reading it from the socket.
#include <cstring>
#include <future>

#include <gtest/gtest.h>

#include "kvstore/engine/kv_publisher.h"
#include "kvstore/engine/kv_staging.h"
#include "status_matchers.h"
#include "test_daemon.h"

namespace kvstore::engine {
namespace {

using namespace std::chrono_literals;

Key BlockKey(uint32_t i) {
  std::vector<uint32_t> tokens = {i, i + 1, i + 2, i + 3};
  return ChainKey(NamespaceSeed("publisher"), tokens, 4);
}

double Requests(const testing::TestDaemon& d, const std::string& op) {
  return d.Metric("kvstore_requests_total", {{"op", op}, {"result", "ok"}}).value_or(0);
}

TEST(EngineKvPublisher, StagedBlocksQueuedTogetherGoInOneInsertManyPulledOneSided) {
  std::string error;
  auto d = testing::TestDaemon::Start({}, &error);
  ASSERT_NE(d, nullptr) << error;
  ClientOptions o;
  o.address = d->address();
  o.transport = "local";
  auto client = Client::Connect(o);
  ASSERT_OK(client);
  constexpr int kBlocks = 64;
  constexpr size_t kBlockBytes = 1024;
  auto staging = KvStaging::Create(client->get(), kBlockBytes, kBlocks);
  ASSERT_OK(staging);
  auto slots = (*staging)->TryAcquire(kBlocks);
  ASSERT_EQ(slots.size(), size_t{kBlocks});
  for (int i = 0; i < kBlocks; ++i) {
    auto slot = (*staging)->Slot(slots[i]);
    for (size_t j = 0; j < slot.size(); ++j) slot[j] = std::byte(static_cast<uint8_t>(i * 7 + j));
  }

  KvPublisher publisher(client->get(), InsertOptions{});
  // A first block holds the publisher thread in its callback while the staged
  // blocks queue up behind it, as a model thread outpacing one round trip does.
  std::promise<void> entered, release;
  std::shared_future<void> released = release.get_future().share();
  publisher.Enqueue(BlockKey(1000), std::vector<std::byte>(kBlockBytes, std::byte{1}),
                    [&](PublishOutcome, const Status&) {
                      entered.set_value();
                      released.wait();
                    });
  entered.get_future().wait();
  const double many_before = Requests(*d, "insert_many");
  const double single_before = Requests(*d, "insert");
  std::vector<std::promise<PublishOutcome>> outcomes(kBlocks);
  for (int i = 0; i < kBlocks; ++i) {
    publisher.EnqueueRegion(
        BlockKey(i), (*staging)->SliceOf(slots[i]), (*staging)->Slot(slots[i]),
        [&outcomes, i](PublishOutcome out, const Status&) { outcomes[i].set_value(out); });
  }
  release.set_value();
  for (int i = 0; i < kBlocks; ++i) {
    EXPECT_EQ(outcomes[i].get_future().get(), PublishOutcome::kInserted) << "block " << i;
  }
  EXPECT_EQ(Requests(*d, "insert_many") - many_before, 1.0);
  EXPECT_EQ(Requests(*d, "insert") - single_before, 0.0);
  EXPECT_EQ(d->Metric("kvstore_one_sided_transfers_total",
                      {{"transport", "local"}, {"direction", "pull"}, {"result", "ok"}})
                .value_or(0),
            double(kBlocks));
  std::vector<Key> keys;
  for (int i = 0; i < kBlocks; ++i) keys.push_back(BlockKey(i));
  auto got = (*client)->DropSelect(keys, 0ms);
  ASSERT_OK(got);
  for (int i = 0; i < kBlocks; ++i) {
    auto slot = (*staging)->Slot(slots[i]);
    EXPECT_TRUE(
        std::equal(slot.begin(), slot.end(), (*got)[i].value.begin(), (*got)[i].value.end()))
        << "block " << i;
  }
}

}  // namespace
}  // namespace kvstore::engine
