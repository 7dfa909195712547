// KvStaging: the memory packed KV blocks travel through, registered with
// libkvstore once (Client::AllocateSharedRegion: shared memory the store
// reaches itself over the local transport, ordinary registered memory over
// tcp and rdma; heap memory and RegisterRegion when that fails), so the engine takes the
// zero-copy path users are told to take: prefill packs a block into a slot
// and inserts it with InsertFromRegion; decode drop_selects straight into
// slots with DropSelectIntoRegions and unpacks from them. Bytes move between
// the transport and this memory without a per-transfer registration or
// bounce copy. When every slot is taken the caller falls back to plain
// buffers (the same protocol, just not registered).
//
// Thread-safety: Acquire/Release from any thread; a slot's bytes belong to
// whoever acquired it until released.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "kvstore/client.h"

namespace kvstore::engine {

class KvStaging {
 public:
  // slots blocks of block_bytes each. REQUIRES: client outlives the staging.
  static Result<std::unique_ptr<KvStaging>> Create(Client* client, size_t block_bytes, int slots);
  ~KvStaging();  // unregisters the region
  KvStaging(const KvStaging&) = delete;
  KvStaging& operator=(const KvStaging&) = delete;

  // n free slots, or none at all when fewer are free.
  std::vector<int> TryAcquire(int n);
  void Release(std::span<const int> slots);
  std::span<std::byte> Slot(int slot);
  RegionSlice SliceOf(int slot) const;
  int slots() const { return slots_; }

 private:
  KvStaging(Client* client, size_t block_bytes, int slots);
  Client* client_;
  size_t block_bytes_;
  int slots_;
  std::vector<std::byte> heap_;  // only when shared memory could not be had
  std::span<std::byte> bytes_;   // the region's memory (the client maps shared memory)
  RegionId region_;
  std::mutex mu_;
  std::vector<int> free_;  // guarded by mu_
};

}  // namespace kvstore::engine
