#include "kvstore/engine/kv_staging.h"

#include <spdlog/spdlog.h>

namespace kvstore::engine {

KvStaging::KvStaging(Client* client, size_t block_bytes, int slots)
    : client_(client), block_bytes_(block_bytes), slots_(slots) {
  for (int i = slots - 1; i >= 0; --i) free_.push_back(i);
}

Result<std::unique_ptr<KvStaging>> KvStaging::Create(Client* client, size_t block_bytes,
                                                     int slots) {
  if (block_bytes == 0 || slots < 1)
    return Status::InvalidArgument("kv staging: needs a positive block size and slot count");
  std::unique_ptr<KvStaging> s(new KvStaging(client, block_bytes, slots));
  const size_t bytes = block_bytes * static_cast<size_t>(slots);
  // Shared memory: the store reaches it itself over the local transport too.
  auto shared = client->AllocateSharedRegion(bytes);
  if (shared.ok()) {
    s->region_ = shared->region;
    s->bytes_ = shared->memory;
    return s;
  }
  spdlog::warn(
      "KV staging: no shared memory ({}); using registered heap memory, which the "
      "local transport sends in frames",
      shared.status().ToString());
  s->heap_.resize(bytes);
  auto id = client->RegisterRegion(s->heap_);
  if (!id.ok()) return id.status().WithContext("registering the KV staging region");
  s->region_ = *id;
  s->bytes_ = s->heap_;
  return s;
}

KvStaging::~KvStaging() {
  Status s = client_->UnregisterRegion(region_);
  if (!s.ok()) spdlog::warn("unregistering the KV staging region: {}", s.ToString());
}

std::vector<int> KvStaging::TryAcquire(int n) {
  std::lock_guard<std::mutex> lock(mu_);
  if (n <= 0 || static_cast<int>(free_.size()) < n) return {};
  std::vector<int> out(free_.end() - n, free_.end());
  free_.resize(free_.size() - n);
  return out;
}

void KvStaging::Release(std::span<const int> slots) {
  std::lock_guard<std::mutex> lock(mu_);
  free_.insert(free_.end(), slots.begin(), slots.end());
}

std::span<std::byte> KvStaging::Slot(int slot) {
  return bytes_.subspan(static_cast<size_t>(slot) * block_bytes_, block_bytes_);
}

RegionSlice KvStaging::SliceOf(int slot) const {
  return RegionSlice{region_, static_cast<uint64_t>(slot) * block_bytes_, block_bytes_};
}

}  // namespace kvstore::engine
