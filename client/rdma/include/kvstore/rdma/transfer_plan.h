// Splitting one transfer (a local scatter-gather list against one contiguous
// remote range) into work requests that each fit the device: at most max_sge
// entries and at most chunk_bytes. Pure, so it is tested without a device.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "kvstore/status.h"

namespace kvstore::rdma {

// One local buffer of a transfer; lkey from the MemoryRegion that holds it.
struct LocalSge {
  uint64_t addr = 0;
  uint64_t length = 0;
  uint32_t lkey = 0;
};

// One work request's worth: its local pieces and where it lands remotely.
struct PlannedChunk {
  std::vector<LocalSge> sges;  // each length <= chunk_bytes (fits ibv_sge)
  uint64_t remote_addr = 0;
  uint64_t length = 0;
};

struct ChunkLimits {
  size_t chunk_bytes = 1 << 20;  // per work request; clamp to the port's max_msg_sz
  uint32_t max_sge = 1;          // the QP's max_send_sge
};

// InvalidArgument on an empty list, a zero-length entry, zero limits,
// chunk_bytes > 2 GiB, or a total that overflows the remote address space.
Result<std::vector<PlannedChunk>> PlanChunks(std::span<const LocalSge> local, uint64_t remote_addr,
                                             const ChunkLimits& limits);

}  // namespace kvstore::rdma
