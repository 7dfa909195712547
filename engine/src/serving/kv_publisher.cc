#include "kvstore/engine/kv_publisher.h"

#include <spdlog/spdlog.h>

namespace kvstore::engine {

KvPublisher::KvPublisher(Client* client, InsertOptions options)
    : client_(client), options_(std::move(options)), thread_([this] { Run(); }) {}

KvPublisher::~KvPublisher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void KvPublisher::Enqueue(const Key& key, std::vector<std::byte> value, Done done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(Item{key, std::move(value), std::nullopt, {}, std::move(done)});
  }
  cv_.notify_one();
}

void KvPublisher::EnqueueRegion(const Key& key, RegionSlice value, std::span<const std::byte> bytes,
                                Done done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(Item{key, {}, value, bytes, std::move(done)});
  }
  cv_.notify_one();
}

void KvPublisher::Run() {
  for (;;) {
    std::vector<Item> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_ and drained
      // Every block ready now goes in one request, in queue order.
      do {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      } while (!queue_.empty() && batch.size() < kMaxBatch);
    }
    if (batch.size() > 1) {
      PublishMany(batch);
      continue;
    }
    Status error;
    PublishOutcome outcome = Publish(batch[0], &error);
    if (batch[0].done) batch[0].done(outcome, error);
  }
}

void KvPublisher::PublishMany(std::vector<Item>& items) {
  std::vector<InsertItem> wire;
  wire.reserve(items.size());
  for (const Item& item : items) wire.push_back({item.key, item.bytes(), std::nullopt});
  Result<std::vector<Result<bool>>> results = client_->InsertMany(wire, options_);
  if (!results.ok()) {
    spdlog::warn("insert_many of {} KV blocks refused ({}); publishing them one by one",
                 items.size(), results.status().ToString());
  }
  for (size_t i = 0; i < items.size(); ++i) {
    Item& item = items[i];
    Status error;
    PublishOutcome outcome;
    if (!results.ok() || ((*results)[i].ok() && !*(*results)[i])) {
      outcome = Publish(item, &error);  // refused as a whole, or present: retain it
    } else if ((*results)[i].ok()) {
      outcome = PublishOutcome::kInserted;
    } else {
      error = (*results)[i].status().WithContext("insert of KV block " +
                                                 item.key.ToHex().substr(0, 16));
      spdlog::warn(
          "{} ({} bytes); its decode will recompute it. Check kvstored is up at {} "
          "and has room (--memory).",
          error.ToString(), item.bytes().size(), client_->options().address);
      outcome = PublishOutcome::kFailed;
    }
    if (item.done) item.done(outcome, error);
  }
}

PublishOutcome KvPublisher::Publish(const Item& item, Status* error) {
  // Bounded: each round needs the entry to vanish between Insert and Retain.
  for (int attempt = 0; attempt < 4; ++attempt) {
    Result<bool> stored = item.region ? client_->InsertFromRegion(item.key, *item.region, options_)
                                      : client_->Insert(item.key, item.value, options_);
    if (!stored.ok()) {
      *error = stored.status().WithContext("insert of KV block " + item.key.ToHex().substr(0, 16));
      spdlog::warn(
          "{} ({} bytes); its decode will recompute it. Check kvstored is up at {} "
          "and has room (--memory).",
          error->ToString(), item.bytes().size(), client_->options().address);
      return PublishOutcome::kFailed;
    }
    if (*stored) return PublishOutcome::kInserted;
    Result<size_t> retained = client_->Retain(std::span<const Key>(&item.key, 1));
    if (retained.ok() && *retained == 1) return PublishOutcome::kRetained;
    if (!retained.ok()) {
      *error =
          retained.status().WithContext("retain of KV block " + item.key.ToHex().substr(0, 16));
      spdlog::warn("{}; its decode will recompute it", error->ToString());
      return PublishOutcome::kFailed;
    }
  }
  *error = Status::Internal("KV block " + item.key.ToHex().substr(0, 16) +
                            " kept vanishing between insert and retain");
  return PublishOutcome::kFailed;
}

}  // namespace kvstore::engine
