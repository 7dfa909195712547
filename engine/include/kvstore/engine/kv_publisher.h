// KvPublisher: the prefill side's insert queue. The model thread packs each
// full block as soon as it is computed and hands it here; one publisher
// thread inserts it into kvstored while the model computes the next chunk,
// so transfer overlaps compute. Blocks queued together go out in one
// InsertMany (one round trip for all of them, up to kMaxBatch): those in the
// staging region (shared memory, kv_staging.h) are pulled by the store
// one-sided on the local transport (rdma: any registered region), plain
// buffers travel in the request's frame.
//
// Prefix-reuse race: when the key is already stored (Insert returns false:
// another request produced the same prefix block), the publisher Retains it
// instead, adding one pending taker so both decodes find it (see
// engine/README.md, "Prefix reuse"). If the entry vanished between the two calls it inserts
// again.
//
// Thread-safety: Enqueue from any thread; callbacks run on the publisher thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "kvstore/client.h"

namespace kvstore::engine {

// What became of one block.
enum class PublishOutcome : uint8_t { kInserted, kRetained, kFailed };

class KvPublisher {
 public:
  using Done = std::function<void(PublishOutcome, const Status&)>;

  // REQUIRES: client outlives the publisher.
  KvPublisher(Client* client, InsertOptions options);
  // Finishes what is queued, then joins.
  ~KvPublisher();
  KvPublisher(const KvPublisher&) = delete;
  KvPublisher& operator=(const KvPublisher&) = delete;

  void Enqueue(const Key& key, std::vector<std::byte> value, Done done);
  // The value is in registered memory: `bytes` are the slice's bytes, which
  // stay untouched until `done` runs.
  void EnqueueRegion(const Key& key, RegionSlice value, std::span<const std::byte> bytes,
                     Done done);

 private:
  struct Item {
    Key key;
    std::vector<std::byte> value;
    std::optional<RegionSlice> region;  // set: the value is there instead
    std::span<const std::byte> region_bytes;
    Done done;
    std::span<const std::byte> bytes() const { return region ? region_bytes : value; }
  };
  void Run();
  PublishOutcome Publish(const Item& item, Status* error);
  // Blocks in one request; a block already present goes through Publish
  // (to retain it), and a refused request falls back to Publish block by block.
  void PublishMany(std::vector<Item>& items);
  static constexpr size_t kMaxBatch = 64;

  Client* client_;
  InsertOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;  // guarded by mu_
  bool stop_ = false;       // guarded by mu_
  std::thread thread_;
};

}  // namespace kvstore::engine
